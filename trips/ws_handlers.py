"""Trip messages over the WebSocket (PROTOCOL.md, "WebSocket").

Each handler is `async (consumer, data) -> reply frame | None`: parse,
call one service off the event loop, build the reply.
"""

HANDLERS: dict = {}
