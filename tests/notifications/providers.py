"""Local servers that speak the push providers' HTTP APIs, on 127.0.0.1.

Each records what arrived (path, headers, body) and checks what a real
provider checks before it answers: FCM's token endpoint verifies the
service account's signed assertion, its send endpoint the access token it
issued; APNs (HTTP/2 only, h2c or TLS with ALPN) verifies the provider
token's ES256 signature, key id and team; a Web Push service verifies the
VAPID signature, and the test's browser decrypts the payload. A test
scripts answers per device token (`answers`), e.g. a 503 then a 200.
"""

import base64
import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import h2.config
import h2.connection
import h2.events
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int
    body: dict | None = None
    headers: dict[str, str] = field(default_factory=dict)


class Recorder:
    """What arrived, and the answers scripted per device token."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.answers: dict[str, list[Answer]] = defaultdict(list)

    def record(self, received: Received) -> None:
        with self.lock:
            self.received.append(received)

    def answer_for(self, token: str) -> Answer | None:
        with self.lock:
            queue = self.answers.get(token)
            return queue.pop(0) if queue else None

    def wait_for(self, count: int, timeout_s: float = 15) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        with self.lock:
            return list(self.received)


# --- HTTP/1.1 (FCM, Web Push) -------------------------------------------------------


class _Http1Server:
    def __init__(self, handle) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                answer = handle(Received(self.path, headers, body))
                payload = b"" if answer.body is None else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()
        server.closed = False

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def service_account_key(project_id: str = "taxi-test", token_uri: str = "") -> tuple[dict, object]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    info = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": "key-1",
        "private_key": pem,
        "client_email": f"push@{project_id}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri or "https://oauth2.googleapis.com/token",
    }
    return info, private.public_key()


GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"


class FcmServer(Recorder):
    """The OAuth 2.0 token endpoint (`POST /token`) and FCM's HTTP v1 send
    (`POST /v1/projects/<id>/messages:send`)."""

    def __init__(self, project_id: str = "taxi-test") -> None:
        super().__init__()
        self.project_id = project_id
        self.server = _Http1Server(self._handle)
        self.url = self.server.url
        self.token_url = f"{self.url}/token"
        self.key, self.public_key = service_account_key(project_id, self.token_url)
        self.issued: list[str] = []
        self.token_requests = 0

    def _handle(self, received: Received) -> Answer:
        if received.path == "/token":
            return self._token(received)
        if received.path != f"/v1/projects/{self.project_id}/messages:send":
            return Answer(404, {"error": {"code": 404, "status": "NOT_FOUND"}})
        bearer = received.headers.get("authorization", "").removeprefix("Bearer ")
        if bearer not in self.issued:
            return Answer(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
        self.record(received)
        token = received.json()["message"]["token"]
        answer = self.answer_for(token)
        return answer or Answer(200, {"name": f"projects/{self.project_id}/messages/1"})

    def _token(self, received: Received) -> Answer:
        form = {k: v[0] for k, v in parse_qs(received.body.decode()).items()}
        # Google's assertion names Google's token endpoint as its audience,
        # wherever it is sent.
        claims = jwt.decode(
            form["assertion"], self.public_key, algorithms=["RS256"], audience=GOOGLE_TOKEN_URL
        )
        assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
        assert claims["iss"] == self.key["client_email"]
        assert "https://www.googleapis.com/auth/firebase.messaging" in claims["scope"]
        with self.lock:
            self.token_requests += 1
            access = f"ya29.access-{self.token_requests}"
            self.issued.append(access)
        return Answer(200, {"access_token": access, "expires_in": 3600, "token_type": "Bearer"})

    def revoke_access_tokens(self) -> None:
        with self.lock:
            self.issued.clear()

    def close(self) -> None:
        self.server.close()


class WebPushServer(Recorder):
    """A browser vendor's push service: `POST /push/<subscription id>`."""

    def __init__(self) -> None:
        super().__init__()
        self.server = _Http1Server(self._handle)
        self.url = self.server.url

    def endpoint(self, name: str) -> str:
        return f"{self.url}/push/{name}"

    def _handle(self, received: Received) -> Answer:
        self.record(received)
        answer = self.answer_for(received.path.rsplit("/", 1)[-1])
        return answer or Answer(201, None, {"location": f"{self.url}/m/1"})

    def close(self) -> None:
        self.server.close()


def vapid_claims(received: Received, audience: str) -> dict:
    """Check the VAPID Authorization header (RFC 8292) as a push service
    does: its JWT verifies with the key it names. Returns the claims."""
    scheme, _, params = received.headers["authorization"].partition(" ")
    assert scheme == "vapid"
    values = dict(part.strip().split("=", 1) for part in params.split(","))
    raw = _b64decode(values["k"])
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    return jwt.decode(values["t"], public, algorithms=["ES256"], audience=audience)


def _b64decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


# --- HTTP/2 (APNs) ------------------------------------------------------------------


def apns_signing_key() -> tuple[str, ec.EllipticCurvePublicKey]:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return pem, private.public_key()


def self_signed_tls(directory: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context (ALPN h2 only) for 127.0.0.1, and a client context
    that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "apns.crt", directory / "apns.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    server.set_alpn_protocols(["h2"])
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


class ApnsServer(Recorder):
    """APNs' provider API over HTTP/2 (the h2 library's state machine):
    `POST /3/device/<token>` with a provider token. Plain h2c (prior
    knowledge) without `tls`, else TLS that negotiates h2 by ALPN."""

    def __init__(self, *, key_id: str, team_id: str, topic: str, tls: ssl.SSLContext | None = None):
        super().__init__()
        self.key_pem, self.public_key = apns_signing_key()
        self.key_id, self.team_id, self.topic = key_id, team_id, topic
        self.tls = tls
        self.connections = 0
        self.alpn: list[str | None] = []
        self.provider_tokens: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        port = self.listener.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with self.lock:
            self.connections += 1
        try:
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
                with self.lock:
                    self.alpn.append(conn.selected_alpn_protocol())
            config = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
            h2conn = h2.connection.H2Connection(config=config)
            h2conn.initiate_connection()
            conn.sendall(h2conn.data_to_send())
            streams: dict[int, Received] = {}
            while not self.stopped.is_set():
                data = conn.recv(65535)
                if not data:
                    return
                for event in h2conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        headers = dict(event.headers)
                        streams[event.stream_id] = Received(headers[":path"], headers, b"")
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id].body += event.data
                        h2conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        self._respond(h2conn, event.stream_id, streams.pop(event.stream_id))
                    elif isinstance(event, h2.events.ConnectionTerminated):
                        return
                conn.sendall(h2conn.data_to_send())
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()

    def _respond(self, h2conn, stream_id: int, received: Received) -> None:
        answer = self._answer(received)
        body = b"" if answer.body is None else json.dumps(answer.body).encode()
        headers = [
            (":status", str(answer.status)),
            ("apns-id", received.headers.get("apns-id", "")),
        ]
        headers += list(answer.headers.items())
        h2conn.send_headers(stream_id, headers, end_stream=not body)
        if body:
            h2conn.send_data(stream_id, body, end_stream=True)

    def _answer(self, received: Received) -> Answer:
        if received.headers.get(":method") != "POST" or not received.path.startswith("/3/device/"):
            return Answer(405, {"reason": "MethodNotAllowed"})
        scheme, _, provider_token = received.headers.get("authorization", "").partition(" ")
        try:
            header = jwt.get_unverified_header(provider_token)
            claims = jwt.decode(provider_token, self.public_key, algorithms=["ES256"])
        except jwt.PyJWTError:
            return Answer(403, {"reason": "InvalidProviderToken"})
        if scheme != "bearer" or header.get("kid") != self.key_id or claims["iss"] != self.team_id:
            return Answer(403, {"reason": "InvalidProviderToken"})
        if received.headers.get("apns-topic") != self.topic:
            return Answer(400, {"reason": "TopicDisallowed"})
        with self.lock:
            self.provider_tokens.append(provider_token)
        self.record(received)
        answer = self.answer_for(received.path.removeprefix("/3/device/"))
        return answer or Answer(200)

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()
