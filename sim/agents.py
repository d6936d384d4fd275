"""Driver and rider agents: each one a client app over its own WebSocket
(`sim.drivers`, `sim.riders`), and what they share.

Agents act on what arrives on their socket and on the scenario's scripted
decisions, and write what they saw to the recorder. They share one event
loop and never block it.
"""

ACTIVE = {"REQUESTED", "STARTED", "ARRIVED", "IN_PROGRESS"}
FINAL = {"COMPLETED", "CANCELED", "EXPIRED"}
