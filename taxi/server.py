"""The web process: daphne, with four corrections to how it meets the network.

    python -m taxi.server <daphne's arguments>        (the Procfile's `web`)

1. The application's close codes reach the client. The consumer closes a
   socket with 1009 (frame too big) and 1008 (flood), as PROTOCOL.md says,
   and 1012 when it may have missed pushes (taxi.infra.channel_layer);
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

4. A request body larger than the service reads is refused from its
   headers. Daphne (Twisted) buffers a whole body, to memory or a temporary
   file, before the application sees the first byte, so a request announcing
   100 MB was read to the end before Django refused it. Here one announcing
   more than taxi.http_errors.request_body_limit (DATA_UPLOAD_MAX_MEMORY_SIZE,
   plus PHOTO_MAX_BYTES for multipart) gets a 413 `too_large` at once, with
   no `100 Continue` to invite the body, and nothing of it is kept. Most
   clients send the body without waiting for an answer; one of a moderate
   size (DRAIN_MAX_BYTES) is read to its end and dropped, so that they read
   the 413 rather than a reset connection; a larger one, or a chunked body
   that runs over, is cut off at once.

It also settles the garbage collector once the application is loaded and the
server starts (`taxi.infra.runtime.settle_gc`): full collections over everything
Django loads were the long pauses in the dispatch latency's tail.
"""

# daphne.server installs Twisted's asyncio reactor on import; it must come
# before anything that could import another reactor.
import daphne.server  # isort:skip

import json
import logging

from daphne import http_protocol, utils, ws_protocol
from daphne.cli import CommandLineInterface
from twisted.internet import reactor
from twisted.web.http_headers import Headers

from taxi.http_errors import request_body_limit
from taxi.infra.runtime import settle_gc

logger = logging.getLogger(__name__)

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

    def handle_reply(self, message) -> None:
        """An application close in 3000-4999 goes out with its reason, which
        daphne drops: 4001 `token_expired`, 4003 `credentials_revoked`
        (PROTOCOL.md, "WebSocket, extended")."""
        code, reason = message.get("code"), message.get("reason")
        if (
            message.get("type") == "websocket.close"
            and reason
            and self.state == self.STATE_OPEN
            and isinstance(code, int)
            and 3000 <= code <= 4999
        ):
            self.sendClose(code=code, reason=reason)
            return
        super().handle_reply(message)


class WebSocketFactory(ws_protocol.WebSocketFactory):
    """Daphne's factory, with the protocol above, failing connections with a
    close frame. Daphne sets its other options (sizes, timeouts) after
    construction, leaving this one alone."""

    protocol = WebSocketProtocol

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.setProtocolOptions(failByDrop=False)


# A refused body up to this size is read and dropped, for at most this long.
DRAIN_MAX_BYTES = 16 * 1024 * 1024
DRAIN_TIMEOUT_S = 10.0


class WebRequest(http_protocol.WebRequest):
    """Daphne's HTTP request, refusing a body over the limit (4 above)."""

    _refused = False
    _body_limit: int | None = None
    _body_received = 0
    _drain_timer = None

    def gotLength(self, length: int | None) -> None:  # noqa: N802 - Twisted's name
        content_type = self.requestHeaders.getRawHeaders(b"content-type", [b""])[0]
        self._body_limit = request_body_limit(content_type.decode("latin-1"))
        if self._body_limit is not None and length is not None and length > self._body_limit:
            super().gotLength(0)
            self._refuse(announced=length)
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:  # noqa: N802 - Twisted's name
        if self._refused:
            return
        self._body_received += len(data)
        if self._body_limit is not None and self._body_received > self._body_limit:
            self._refuse(announced=None)
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:  # noqa: N802
        if self._refused:  # never reaches the application; the body is drained
            self._close()
        else:
            super().requestReceived(command, path, version)

    def connectionLost(self, reason) -> None:  # noqa: N802 - Twisted's name
        self._stop_draining()
        super().connectionLost(reason)

    def _refuse(self, *, announced: int | None) -> None:
        self._refused = True
        # Twisted answers `Expect: 100-continue` right after gotLength; the
        # client must not be invited to send a body that will not be read.
        self.requestHeaders.removeHeader(b"expect")
        body = json.dumps(
            {
                "detail": (
                    "The request body is too large; at most "
                    f"{self._body_limit} bytes are accepted here."
                ),
                "code": "too_large",
            }
        ).encode()
        head = (
            "HTTP/1.1 413 Content Too Large\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        logger.info(
            "http.body_too_large", extra={"announced": announced, "limit": self._body_limit}
        )
        self.channel.transport.write(head + body)
        if announced is not None and announced <= DRAIN_MAX_BYTES:
            self._drain_timer = reactor.callLater(DRAIN_TIMEOUT_S, self._close)
        else:
            self._close()

    def _close(self) -> None:
        self._stop_draining()
        if self.channel is not None:
            self.channel.loseConnection()

    def _stop_draining(self) -> None:
        if self._drain_timer is not None and self._drain_timer.active():
            self._drain_timer.cancel()
        self._drain_timer = None


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
    http_protocol.WebRequest = WebRequest
    http_protocol.parse_x_forwarded_for = parse_x_forwarded_for
    ws_protocol.parse_x_forwarded_for = parse_x_forwarded_for
    # The CLI imports the application before it runs the reactor, so this
    # runs with everything start-up builds already alive.
    reactor.callWhenRunning(settle_gc)
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
