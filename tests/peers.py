"""Fake peers on loopback for what a real server cannot show: silence, garbage, a refused port,
scripted PostgreSQL-protocol replies (Neon's proxy), and a DNS server that answers from a dict.

Each is a context manager that runs in daemon threads and stops within a second on exit; the
fixtures in conftest.py wrap them. Stream peers unpack as ``host, port = peer``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgcluster import LOOPBACK_NAMES, harness_ca, session_dir

SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102
PROTOCOL_3_0 = 196608
IO_TIMEOUT = 5.0
_POLL = 0.1
NEON_CERT_NAMES = ("*.us-east-2.aws.neon.tech", "*.c-2.us-east-2.aws.neon.tech", "*.neon.invalid")


class _HostPort:
    """Unpacks as ``host, port``, so a peer reads like the address it stands for."""

    host: str
    port: int

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    def __iter__(self) -> Iterator[Any]:
        return iter(self.address)

    def __getitem__(self, index: int) -> Any:
        return self.address[index]

    def __len__(self) -> int:
        return 2


class _StreamPeer(_HostPort):
    """A loopback TCP listener that hands each connection to ``handle`` in its own thread."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.accepted = 0
        self._stop = threading.Event()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> _StreamPeer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, 0))
        listener.listen(64)
        listener.settimeout(_POLL)
        self._listener = listener
        self.port = listener.getsockname()[1]
        self._spawn(self._accept_loop)
        return self

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=f"{type(self).__name__}:{self.port}")
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(IO_TIMEOUT)
            with self._lock:
                self._clients.append(conn)
                self.accepted += 1
            self._spawn(self._guarded, conn)

    def _guarded(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except (OSError, ssl.SSLError, ValueError, EOFError):
            pass
        finally:
            if self._closes_after_handle:
                _close(conn)

    _closes_after_handle = True

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            _close(self._listener)
        with self._lock:
            clients, threads = list(self._clients), list(self._threads)
        for conn in clients:
            _close(conn)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(timeout=1.0)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class SilentPeer(_StreamPeer):
    """Accepts TCP connections and never says a word; the sockets stay open until stop."""

    _closes_after_handle = False

    def handle(self, conn: socket.socket) -> None:
        self._stop.wait()


class GarbagePeer(_StreamPeer):
    """Accepts, sends ``payload`` (empty: just hangs up), then closes.

    With ``wait_for_request`` it first reads what the client sends (up to 1 s), like an HTTP server would.
    """

    def __init__(
        self,
        payload: bytes = b"HTTP/1.1 400 Bad Request\r\n\r\n",
        *,
        host: str = "127.0.0.1",
        wait_for_request: bool = False,
    ) -> None:
        super().__init__(host)
        self.payload = payload
        self.wait_for_request = wait_for_request
        self.received: list[bytes] = []

    def handle(self, conn: socket.socket) -> None:
        if self.wait_for_request:
            conn.settimeout(1.0)
            with contextlib.suppress(TimeoutError):
                self.received.append(conn.recv(65536))
        if self.payload:
            conn.sendall(self.payload)


class ClosedPort(_HostPort):
    """A loopback port with nothing listening: connecting gets 'connection refused'.

    The port stays bound (not listening) until exit, so nothing else can take it meanwhile.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self._sock: socket.socket | None = None

    def start(self) -> ClosedPort:
        self._sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind((self.host, 0))
        self.port = self._sock.getsockname()[1]
        return self

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> ClosedPort:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- scripted PostgreSQL protocol ---------------------------------------------------------------


@dataclass(frozen=True)
class Error:
    """Send an ErrorResponse and hang up. ``{user}``, ``{database}`` and ``{client_ip}`` are filled in.

    Neon's proxy sends only S, C and M (severity ``ERROR``, code ``XX000``); ``fields`` adds more,
    e.g. ``{"D": detail}``.
    """

    message: str
    severity: str = "ERROR"
    code: str = "XX000"
    fields: Mapping[str, str] = field(default_factory=dict)
    close: bool = True


@dataclass(frozen=True)
class AskPassword:
    """AuthenticationCleartextPassword, then read the PasswordMessage."""


@dataclass(frozen=True)
class AskSasl:
    """AuthenticationSASL offering these mechanisms, then read the SASLInitialResponse (mechanism recorded)."""

    mechanisms: tuple[str, ...] = ("SCRAM-SHA-256",)


@dataclass(frozen=True)
class Ready:
    """AuthenticationOk, ParameterStatus, BackendKeyData, ReadyForQuery; then answer each query with ``query_error``."""

    server_version: str = "15.0"
    parameters: Mapping[str, str] = field(default_factory=dict)
    query_error: str = "this is a fake server: queries are not supported"


@dataclass(frozen=True)
class Notice:
    message: str
    severity: str = "NOTICE"
    code: str = "00000"


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Raw:
    data: bytes


@dataclass(frozen=True)
class Hangup:
    """Close the socket without a word (what the proxy does on a protocol violation)."""


@dataclass(frozen=True)
class Trickle:
    """Send ``data`` one byte every ``interval`` seconds (a peer that keeps a deadline-per-recv client waiting)."""

    data: bytes
    interval: float = 1.0


@dataclass(frozen=True)
class Flood:
    """Send ``message`` ``count`` times (a flood of notices, an oversized reply in pieces)."""

    message: bytes
    count: int


Step = Error | AskPassword | AskSasl | Ready | Notice | Sleep | Raw | Hangup | Trickle | Flood


@dataclass(frozen=True)
class PgScript:
    """What the fake server does after the StartupMessage.

    ``tls``: answer ``S`` to SSLRequest and do TLS (else ``N``). ``insecure_error``: a StartupMessage
    without TLS gets this error instead of the steps (Neon's proxy refuses plaintext).
    ``ssl_reply``: answer SSLRequest with these bytes instead (``b"S" + garbage``: SSL accepted, then
    not TLS), then hang up.
    """

    steps: tuple[Step, ...]
    tls: bool = True
    insecure_error: str | None = None
    ssl_reply: bytes | None = None


NEON_INSECURE = "connection is insecure (try using `sslmode=require`)"
NEON_ENDPOINT_NOT_SPECIFIED = (
    "Endpoint ID is not specified. Either please upgrade the postgres client library (libpq) for SNI support "
    "or pass the endpoint ID (first part of the domain name) as a parameter: '?options=endpoint%3D<endpoint-id>'. "
    "See more at https://neon.tech/sni"
)
NEON_QUOTA_EXCEEDED = (
    "Your account or project has exceeded the compute time quota. Upgrade your plan to increase limits."
)
NEON_COMPUTE_UNREACHABLE = "Couldn't connect to compute node"
NEON_IP_NOT_ALLOWED = (
    "This IP address {client_ip} is not allowed to connect to this endpoint. Please add it to the allowed list "
    "in the Neon console. Make sure to check for IPv4 or IPv6 addresses."
)
NEON_PASSWORD_FAILED = "password authentication failed for user '{user}'"
NEON_TOO_MANY_CONNECTIONS = "Too many connections to this endpoint. Please try again later."
NEON_ENDPOINT_DISABLED = "Control plane request failed: endpoint is disabled"


def neon_proxy(*steps: Step) -> PgScript:
    """A script that behaves like Neon's proxy around ``steps``: TLS on, plaintext refused."""
    return PgScript(steps=tuple(steps), tls=True, insecure_error=NEON_INSECURE)


class NeonPresets:
    """Ready scripts for the Neon proxy replies in error-catalogue.md §1."""

    endpoint_not_specified = neon_proxy(Error(NEON_ENDPOINT_NOT_SPECIFIED))
    quota_exceeded = neon_proxy(Error(NEON_QUOTA_EXCEEDED))
    compute_unreachable = neon_proxy(Error(NEON_COMPUTE_UNREACHABLE))
    ip_not_allowed = neon_proxy(Error(NEON_IP_NOT_ALLOWED))
    password_failed = neon_proxy(AskPassword(), Error(NEON_PASSWORD_FAILED))
    too_many_connections = neon_proxy(Error(NEON_TOO_MANY_CONNECTIONS))
    endpoint_disabled = neon_proxy(Error(NEON_ENDPOINT_DISABLED))
    accepts = neon_proxy(AskPassword(), Ready())


@dataclass
class Seen:
    """What one client connection showed the fake server."""

    client: tuple[str, int]
    ssl_requested: bool = False
    gss_requested: bool = False
    direct_tls: bool = False
    tls: bool = False
    tls_version: str | None = None
    sni: str | None = None
    alpn: str | None = None
    cancel_request: bool = False
    protocol: tuple[int, int] | None = None
    params: dict[str, str] = field(default_factory=dict)
    password: str | None = field(default=None, repr=False)
    """Kept in memory only, so a test can check what the client sent; never print it."""
    sasl_mechanism: str | None = None
    queries: list[str] = field(default_factory=list)
    done: bool = False


def _message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


def _fields(pairs: Sequence[tuple[str, str]]) -> bytes:
    return b"".join(code.encode() + value.encode() + b"\0" for code, value in pairs) + b"\0"


class _Conn:
    def __init__(self, sock: socket.socket | ssl.SSLSocket) -> None:
        self.sock = sock

    def read_exact(self, size: int) -> bytes:
        chunks, remaining = [], size
        while remaining:
            chunk = self.sock.recv(remaining)
            if not chunk:
                raise EOFError("client hung up")
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def read_startup(self) -> tuple[int, bytes]:
        (length,) = struct.unpack("!I", self.read_exact(4))
        if not 8 <= length <= 10_000:
            raise ValueError(f"bad startup length {length}")
        body = self.read_exact(length - 4)
        return struct.unpack("!I", body[:4])[0], body[4:]

    def read_message(self) -> tuple[bytes, bytes]:
        kind = self.read_exact(1)
        (length,) = struct.unpack("!I", self.read_exact(4))
        if not 4 <= length <= 1_000_000:
            raise ValueError(f"bad message length {length}")
        return kind, self.read_exact(length - 4)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)


class PgProtocolPeer(_StreamPeer):
    """A scripted PostgreSQL-protocol server. Every connection runs the script from the start.

    TLS uses a certificate from the harness CA (``ca_path``) for localhost, 127.0.0.1, ::1, the
    ``NEON_CERT_NAMES`` wildcards and ``cert_names``; connect with ``host=<name>&hostaddr=127.0.0.1``
    to send a Neon-like SNI without DNS. ``connections`` records what each client showed.
    """

    _closes_after_handle = True

    def __init__(self, script: PgScript, *, host: str = "127.0.0.1", cert_names: Sequence[str] = ()) -> None:
        super().__init__(host)
        self.script = script
        self.connections: list[Seen] = []
        self.ca_path: Path | None = None
        self._context: ssl.SSLContext | None = None
        self._cert_names = [*LOOPBACK_NAMES, *NEON_CERT_NAMES, *cert_names]

    def start(self) -> PgProtocolPeer:
        if self.script.tls:
            ca = harness_ca()
            directory = Path(os.path.join(session_dir(), f"peer-{id(self)}"))
            directory.mkdir(exist_ok=True)
            cert, key = ca.issue(directory, self._cert_names)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            context.set_alpn_protocols(["postgresql"])
            context.sni_callback = self._record_sni
            self._context = context
            self.ca_path = ca.path
        super().start()
        return self

    @property
    def last(self) -> Seen:
        """The most recent connection (waits up to 2 s for one to finish)."""
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not (self.connections and self.connections[-1].done):
            time.sleep(0.01)
        if not self.connections:
            raise AssertionError("no client connected to the fake server")
        return self.connections[-1]

    def url(
        self,
        user: str = "alice",
        password: str | None = "pw",
        dbname: str = "app",
        *,
        host: str | None = None,
        **params: Any,
    ) -> str:
        from urllib.parse import quote, urlencode

        userinfo = quote(user, safe="") + (":" + quote(password, safe="") if password is not None else "")
        name = host or self.host
        if ":" in name:
            name = f"[{name}]"
        query = urlencode({k: str(v) for k, v in params.items()}, quote_via=quote)
        return f"postgresql://{userinfo}@{name}:{self.port}/{quote(dbname, safe='')}" + (f"?{query}" if query else "")

    def _record_sni(self, sslobj: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        seen = getattr(threading.current_thread(), "seen", None)
        if seen is not None:
            seen.sni = server_name

    def handle(self, conn: socket.socket) -> None:
        peer = conn.getpeername()
        seen = Seen(client=(peer[0], peer[1]))
        with self._lock:
            self.connections.append(seen)
        threading.current_thread().seen = seen  # type: ignore[attr-defined]
        wire = _Conn(conn)
        try:
            self._serve(wire, seen)
        finally:
            _close(wire.sock)
            seen.done = True

    def _start_tls(self, wire: _Conn, seen: Seen) -> None:
        assert self._context is not None
        tls = self._context.wrap_socket(wire.sock, server_side=True)  # type: ignore[arg-type]
        with self._lock:
            self._clients.append(tls)
        wire.sock = tls
        seen.tls = True
        seen.tls_version = tls.version()
        seen.alpn = tls.selected_alpn_protocol()

    def _serve(self, wire: _Conn, seen: Seen) -> None:
        if self._context is not None and wire.sock.recv(1, socket.MSG_PEEK) == b"\x16":
            seen.direct_tls = True
            self._start_tls(wire, seen)
        while True:
            code, body = wire.read_startup()
            if code == SSL_REQUEST_CODE and not seen.tls:
                seen.ssl_requested = True
                if self.script.ssl_reply is not None:
                    wire.send(self.script.ssl_reply)
                    self._stop.wait(1.0)
                    return
                if self._context is None:
                    wire.send(b"N")
                    continue
                wire.send(b"S")
                self._start_tls(wire, seen)
            elif code == GSSENC_REQUEST_CODE:
                seen.gss_requested = True
                wire.send(b"N")
            elif code == CANCEL_REQUEST_CODE:
                seen.cancel_request = True
                return
            elif code >> 16 == 3:
                seen.protocol = (3, code & 0xFFFF)
                seen.params = _parse_params(body)
                break
            else:
                return
        if seen.protocol and seen.protocol[1] > 0:
            wire.send(_message(b"v", struct.pack("!II", 0, 0)))
        if self.script.insecure_error is not None and not seen.tls:
            wire.send(self._error(Error(self.script.insecure_error), seen))
            return
        for step in self.script.steps:
            if not self._run_step(wire, seen, step):
                return

    def _error(self, step: Error | Notice, seen: Seen, kind: bytes = b"E") -> bytes:
        message = (
            step.message.replace("{user}", seen.params.get("user", ""))
            .replace("{database}", seen.params.get("database", seen.params.get("user", "")))
            .replace("{client_ip}", seen.client[0])
        )
        pairs = [("S", step.severity), ("C", step.code), ("M", message)]
        if isinstance(step, Error):
            pairs += list(step.fields.items())
        return _message(kind, _fields(pairs))

    def _run_step(self, wire: _Conn, seen: Seen, step: Step) -> bool:
        if isinstance(step, Error):
            wire.send(self._error(step, seen))
            return not step.close
        if isinstance(step, Notice):
            wire.send(self._error(step, seen, b"N"))
        elif isinstance(step, AskPassword):
            wire.send(_message(b"R", struct.pack("!I", 3)))
            kind, body = wire.read_message()
            if kind != b"p":
                return False
            seen.password = body.rstrip(b"\0").decode("utf-8", "replace")
        elif isinstance(step, AskSasl):
            wire.send(
                _message(b"R", struct.pack("!I", 10) + b"".join(m.encode() + b"\0" for m in step.mechanisms) + b"\0")
            )
            kind, body = wire.read_message()
            if kind != b"p":
                return False
            seen.sasl_mechanism = body.split(b"\0", 1)[0].decode()
        elif isinstance(step, Ready):
            self._ready(wire, seen, step)
            return False
        elif isinstance(step, Sleep):
            self._stop.wait(step.seconds)
        elif isinstance(step, Raw):
            wire.send(step.data)
        elif isinstance(step, Trickle):
            for byte in step.data:
                if self._stop.wait(step.interval):
                    return False
                wire.send(bytes([byte]))
        elif isinstance(step, Flood):
            for _ in range(step.count):
                if self._stop.is_set():
                    return False
                wire.send(step.message)
        elif isinstance(step, Hangup):
            return False
        return True

    def _ready(self, wire: _Conn, seen: Seen, step: Ready) -> None:
        params = {
            "server_version": step.server_version,
            "server_encoding": "UTF8",
            "client_encoding": "UTF8",
            "DateStyle": "ISO, MDY",
            "integer_datetimes": "on",
            "standard_conforming_strings": "on",
            "TimeZone": "UTC",
            **step.parameters,
        }
        out = _message(b"R", struct.pack("!I", 0))
        out += b"".join(_message(b"S", k.encode() + b"\0" + v.encode() + b"\0") for k, v in params.items())
        out += _message(b"K", struct.pack("!II", os.getpid() & 0x7FFFFFFF, 12345))
        out += _message(b"Z", b"I")
        wire.send(out)
        while not self._stop.is_set():
            try:
                kind, body = wire.read_message()
            except TimeoutError:
                continue
            if kind == b"X":
                return
            if kind == b"Q":
                seen.queries.append(body.rstrip(b"\0").decode("utf-8", "replace"))
                wire.send(self._error(Error(step.query_error, code="0A000"), seen) + _message(b"Z", b"I"))
            elif kind == b"S":
                wire.send(_message(b"Z", b"I"))


def _parse_params(body: bytes) -> dict[str, str]:
    parts = body.split(b"\0")
    params: dict[str, str] = {}
    for key, value in zip(parts[0::2], parts[1::2], strict=False):
        if not key:
            break
        params[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return params


# --- DNS -----------------------------------------------------------------------------------------

NXDOMAIN = "NXDOMAIN"
SERVFAIL = "SERVFAIL"
REFUSED = "REFUSED"
SILENT = "SILENT"
NODATA = "NODATA"
_SPECIALS = (NXDOMAIN, SERVFAIL, REFUSED, SILENT, NODATA)


@dataclass(frozen=True)
class Query:
    name: str
    rdtype: str
    transport: str


class DnsServer:
    """A loopback DNS server (UDP and TCP on one port) answering from ``records``.

    ``records`` maps a name to: an address or a list of addresses (A or AAAA by form); a dict
    ``{"A": [...], "AAAA": [...], "CNAME": "target", "TXT": [...]}``; or one of ``NXDOMAIN``,
    ``SERVFAIL``, ``REFUSED``, ``SILENT`` (never answers), ``NODATA`` (NOERROR, empty answer).
    Names not listed get ``default`` (NXDOMAIN). CNAMEs are followed inside ``records`` like a
    recursive resolver would. ``str(server)`` is ``"127.0.0.1:PORT"`` for ``--nameserver``.
    """

    def __init__(self, records: Mapping[str, Any] | None = None, *, default: str = NXDOMAIN, ttl: int = 60) -> None:
        self.records = {_norm(name): spec for name, spec in (records or {}).items()}
        self.default = default
        self.ttl = ttl
        self.host = "127.0.0.1"
        self.port = 0
        self.queries: list[Query] = []
        self._stop = threading.Event()
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    @property
    def nameserver(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.nameserver

    def start(self) -> DnsServer:
        for _ in range(20):
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            udp.bind((self.host, 0))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                continue
            tcp.listen(16)
            break
        else:
            raise OSError("no loopback port free for both UDP and TCP")
        udp.settimeout(_POLL)
        tcp.settimeout(_POLL)
        self._udp, self._tcp, self.port = udp, tcp, port
        for target in (self._serve_udp, self._serve_tcp):
            thread = threading.Thread(target=target, daemon=True, name=f"DnsServer:{port}")
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for sock in (self._udp, self._tcp):
            if sock is not None:
                _close(sock)
        for thread in self._threads:
            thread.join(timeout=1.0)

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve_udp(self) -> None:
        assert self._udp is not None
        while not self._stop.is_set():
            try:
                wire, client = self._udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            reply = self._answer(wire, "udp")
            if reply is not None:
                with contextlib.suppress(OSError):
                    self._udp.sendto(reply, client)

    def _serve_tcp(self) -> None:
        assert self._tcp is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(IO_TIMEOUT)
            threading.Thread(target=self._tcp_client, args=(conn,), daemon=True).start()

    def _tcp_client(self, conn: socket.socket) -> None:
        with contextlib.closing(conn):
            try:
                wire = _Conn(conn)
                while not self._stop.is_set():
                    (size,) = struct.unpack("!H", wire.read_exact(2))
                    reply = self._answer(wire.read_exact(size), "tcp")
                    if reply is None:
                        self._stop.wait(IO_TIMEOUT)
                        return
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
            except (OSError, EOFError):
                return

    def _answer(self, wire: bytes, transport: str) -> bytes | None:
        import dns.exception
        import dns.flags
        import dns.message
        import dns.rcode
        import dns.rdatatype

        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        if not query.question:
            return None
        question = query.question[0]
        qname = question.name.to_text()
        self.queries.append(Query(_norm(qname), dns.rdatatype.to_text(question.rdtype), transport))
        spec = self.records.get(_norm(qname), self.default)
        if spec == SILENT:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.RA
        if spec in (NXDOMAIN, SERVFAIL, REFUSED):
            response.set_rcode(dns.rcode.from_text(spec))
        elif spec != NODATA:
            self._fill(response, qname, question.rdtype)
        limit = 65535 if transport == "tcp" else max(512, query.payload if query.edns >= 0 else 512)
        try:
            return response.to_wire(max_size=limit)
        except dns.exception.TooBig:
            truncated = dns.message.make_response(query)
            truncated.flags |= dns.flags.TC | dns.flags.RA
            return truncated.to_wire()

    def _fill(self, response: Any, qname: str, rdtype: int) -> None:
        import dns.rcode
        import dns.rdatatype
        import dns.rrset

        name, seen_names = qname, set()
        while name not in seen_names:
            seen_names.add(name)
            spec = self.records.get(_norm(name))
            if spec is None or spec in _SPECIALS:
                if name != qname and spec in (NXDOMAIN, None):
                    response.set_rcode(dns.rcode.NXDOMAIN)
                return
            by_type = _by_type(spec)
            cname = by_type.get("CNAME")
            if cname and rdtype != dns.rdatatype.CNAME:
                target = _fqdn(cname[0])
                response.answer.append(dns.rrset.from_text(_fqdn(name), self.ttl, "IN", "CNAME", target))
                name = target
                continue
            wanted = dns.rdatatype.to_text(rdtype)
            values = by_type.get(wanted, [])
            if values:
                response.answer.append(dns.rrset.from_text_list(_fqdn(name), self.ttl, "IN", wanted, values))
            return


def _norm(name: str) -> str:
    return name.rstrip(".").lower()


def _fqdn(name: str) -> str:
    return name if name.endswith(".") else name + "."


def _by_type(spec: Any) -> dict[str, list[str]]:
    if isinstance(spec, str):
        spec = [spec]
    if isinstance(spec, Mapping):
        return {key.upper(): [value] if isinstance(value, str) else list(value) for key, value in spec.items()}
    out: dict[str, list[str]] = {}
    for value in spec:
        out.setdefault("AAAA" if ":" in value else "A", []).append(value)
    return out


class Nameserver(str):
    """``"127.0.0.1:PORT"`` that also carries its server (``.server``, ``.queries``)."""

    server: DnsServer

    def __new__(cls, server: DnsServer) -> Nameserver:
        value = super().__new__(cls, server.nameserver)
        value.server = server
        return value

    @property
    def queries(self) -> list[Query]:
        return self.server.queries

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port
