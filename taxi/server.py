"""The web process: daphne, with three corrections to how it meets the network.

    python -m taxi.server <daphne's arguments>        (the Procfile's `web`)

1. The application's close codes reach the client. The consumer closes a
   socket with 1009 (frame too big) and 1008 (flood), as PROTOCOL.md says,
   and 1012 when it may have missed pushes (taxi.channel_layer);
   autobahn, under daphne, accepts only 1000 and 3000-4999 from an
   application and raises on anything else, so the client got 1011 (internal
   error) instead. Here the codes RFC 6455 lets an endpoint send (1000-1003,
   1007-1011) go out as given.

2. A WebSocket that breaks the rules is closed, not dropped. Autobahn
   "fails" a connection by dropping TCP unless told otherwise (`failByDrop`,
   on by default): a frame above daphne's --websocket-max-message-size then
   reaches the client as 1006, an abnormal closure with no reason, the same
   thing a network fault looks like, so an app cannot tell "too big, don't
   resend" from "try again". With it off, autobahn sends the close frame RFC
   6455 prescribes first: 1009 (message too big), 1007 (a text frame that is
   not UTF-8), 1002 (protocol error). With `--websocket-max-message-size
   65536`, the protocol's frame limit (PROTOCOL.md: 64 KiB,
   WS_MAX_FRAME_BYTES), an oversized frame is refused from its header, before
   its payload is buffered; the consumer's own check stays for any other
   server.

3. The client address honours NUM_PROXIES. With --proxy-headers, daphne takes
   the client's address from the *first* X-Forwarded-For entry, which is
   whatever the client wrote there: a proxy appends the address it saw, and
   without a proxy nothing checks the header at all. That address becomes
   REMOTE_ADDR, which the per-address throttles key on (log-in, sign-up), so
   a new made-up header per request would escape them. Here the address is
   the entry NUM_PROXIES from the right (the one the outermost trusted proxy
   saw, as DRF reads it too), and with NUM_PROXIES=0 (no proxy) the
   forwarded headers are ignored and the connection's own address stands.

It also settles the garbage collector once the application is loaded and the
server starts (`taxi.runtime.settle_gc`): full collections over everything
Django loads were the long pauses in the dispatch latency's tail.
"""

# daphne.server installs Twisted's asyncio reactor on import; it must come
# before anything that could import another reactor.
import daphne.server  # isort:skip

from daphne import http_protocol, utils, ws_protocol
from daphne.cli import CommandLineInterface
from twisted.internet import reactor
from twisted.web.http_headers import Headers

from taxi.runtime import settle_gc

# Close codes RFC 6455 (section 7.4.1) defines for an endpoint to send, and
# 1012 ("service restart", IANA's registry), which the consumer sends when it
# may have missed pushes; 1004-1006 and 1015 are never sent.
PROTOCOL_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012})


class WebSocketProtocol(ws_protocol.WebSocketProtocol):
    def serverClose(self, code=None) -> None:
        """The application's close, with its code (see above)."""
        if code in PROTOCOL_CLOSE_CODES:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            super().serverClose(code=code)


class WebSocketFactory(ws_protocol.WebSocketFactory):
    """Daphne's factory, with the protocol above, failing connections with a
    close frame. Daphne sets its other options (sizes, timeouts) after
    construction, leaving this one alone."""

    protocol = WebSocketProtocol

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setProtocolOptions(failByDrop=False)


def trusted_proxies() -> int:
    from django.conf import settings

    return settings.REST_FRAMEWORK.get("NUM_PROXIES") or 0


def parse_x_forwarded_for(
    headers,
    address_header_name="X-Forwarded-For",
    port_header_name="X-Forwarded-Port",
    proto_header_name="X-Forwarded-Proto",
    original_addr=None,
    original_scheme=None,
):
    """daphne.utils.parse_x_forwarded_for, trusting only NUM_PROXIES hops."""
    trusted = trusted_proxies()
    if not trusted or not address_header_name:
        return original_addr, original_scheme
    addr, scheme = utils.parse_x_forwarded_for(
        headers,
        address_header_name,
        port_header_name,
        proto_header_name,
        original_addr,
        original_scheme,
    )
    if addr is original_addr:  # no X-Forwarded-For
        return addr, scheme
    if isinstance(headers, Headers):
        headers = dict(headers.getAllRawHeaders())
    wanted = address_header_name.lower().encode()
    values = [v for name, vs in headers.items() if name.lower() == wanted for v in _listed(vs)]
    hops = [hop.strip() for value in values for hop in value.decode("latin-1").split(",")]
    return [hops[-min(trusted, len(hops))], addr[1]], scheme


def _listed(values) -> list[bytes]:
    return list(values) if isinstance(values, list | tuple) else [values]


def main() -> None:
    daphne.server.WebSocketFactory = WebSocketFactory
    http_protocol.parse_x_forwarded_for = parse_x_forwarded_for
    ws_protocol.parse_x_forwarded_for = parse_x_forwarded_for
    # The CLI imports the application before it runs the reactor, so this
    # runs with everything start-up builds already alive.
    reactor.callWhenRunning(settle_gc)
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
