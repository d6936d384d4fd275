"""Driver messages over the WebSocket: presence and positions."""

HANDLERS: dict = {}
