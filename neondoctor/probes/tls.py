"""tls: SSLRequest, a TLS handshake with SNI, the certificate, and what the URL's sslmode makes of it.

The first handshake verifies the chain (against sslrootcert, or the system store when libpq would
not verify at all) so that a healthy server sees one clean TLS connection closed with close_notify.
Python decodes a peer certificate only after verifying it, so the certificate is always read from
its DER bytes by the small reader below; when verification fails, a second handshake without
verification fetches those bytes. The host name is checked here with libpq's verify-full rules.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import select
import socket
import ssl
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neondoctor.probes.base import Address, CheckContext, ProbeResult, Status
from neondoctor.probes.dns import explain, is_ip, neon_without_sni
from neondoctor.probes.tcp import connect, endpoint

name = "tls"

SSL_REQUEST = struct.pack("!ii", 8, 80877103)
EXPIRY_WARN_DAYS = 14
VERIFY_MODES = ("verify-ca", "verify-full")
NO_SSL_TEXT = "server does not support SSL, but SSL was required"
VERIFY_FAILED_TEXT = "SSL error: certificate verify failed"
NEON_INSECURE_TEXT = "connection is insecure (try using `sslmode=require`)"
ENDPOINT_MISSING_TEXT = "Endpoint ID is not specified"
_PEEK_BYTES = 256
ALPN = "postgresql"
STRONG_MODES = ("require", "verify-ca", "verify-full")


# --------------------------------------------------------------------------- DER reader

_OID_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.5": "serialNumber",
    "1.2.840.113549.1.9.1": "emailAddress",
}
_SAN_OID = "2.5.29.17"
_STRING_CODECS = {0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x14: "latin-1", 0x1E: "utf-16-be", 0x1C: "utf-32-be"}


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the DER element at ``pos``."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if not 0 < count <= 4 or pos + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    items = []
    while start < end:
        tag, value_start, value_end = _tlv(data, start)
        items.append((tag, value_start, value_end))
        start = value_end
    return items


def _oid(raw: bytes) -> str:
    if not raw:
        raise ValueError("empty OID")
    parts = [min(raw[0] // 40, 2), raw[0] - 40 * min(raw[0] // 40, 2)]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _name(data: bytes, start: int, end: int) -> list[tuple[str, str]]:
    pairs = []
    for _set_tag, set_start, set_end in _children(data, start, end):
        for _seq_tag, seq_start, seq_end in _children(data, set_start, set_end):
            (_, oid_start, oid_end), (value_tag, value_start, value_end) = _children(data, seq_start, seq_end)[:2]
            oid = _oid(data[oid_start:oid_end])
            codec = _STRING_CODECS.get(value_tag, "latin-1")
            pairs.append((_OID_NAMES.get(oid, oid), data[value_start:value_end].decode(codec, "replace")))
    return pairs


def _time(data: bytes, tag: int, start: int, end: int) -> dt.datetime:
    text = data[start:end].decode("ascii")
    if tag == 0x17:
        year = int(text[:2])
        text = str(2000 + year if year < 50 else 1900 + year) + text[2:]
    return dt.datetime.strptime(text.rstrip("Z")[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)


def _san(data: bytes) -> list[str]:
    _, start, end = _tlv(data, 0)
    names = []
    for tag, value_start, value_end in _children(data, start, end):
        raw = data[value_start:value_end]
        if tag == 0x82:
            names.append("DNS:" + raw.decode("ascii", "replace"))
        elif tag == 0x87 and len(raw) in (4, 16):
            names.append("IP:" + str(ipaddress.ip_address(raw)))
        elif tag == 0x81:
            names.append("email:" + raw.decode("ascii", "replace"))
        elif tag == 0x86:
            names.append("URI:" + raw.decode("ascii", "replace"))
    return names


def read_certificate(der: bytes, now: dt.datetime | None = None) -> dict[str, Any]:
    """Subject, issuer, SAN and validity of an X.509 certificate, from its DER bytes."""
    _, cert_start, _ = _tlv(der, 0)
    _, tbs_start, tbs_end = _tlv(der, cert_start)
    fields = _children(der, tbs_start, tbs_end)
    if fields and fields[0][0] == 0xA0:
        fields = fields[1:]
    if len(fields) < 6:
        raise ValueError("not an X.509 certificate")
    _serial, _algorithm, issuer, validity, subject, _key, *optional = fields
    (nb_tag, nb_start, nb_end), (na_tag, na_start, na_end) = _children(der, validity[1], validity[2])[:2]
    not_before = _time(der, nb_tag, nb_start, nb_end)
    not_after = _time(der, na_tag, na_start, na_end)
    san: list[str] = []
    for tag, start, _ in optional:
        if tag != 0xA3:
            continue
        _, seq_start, seq_end = _tlv(der, start)
        for _ext_tag, ext_start, ext_end in _children(der, seq_start, seq_end):
            parts = _children(der, ext_start, ext_end)
            if _oid(der[parts[0][1] : parts[0][2]]) == _SAN_OID:
                san = _san(der[parts[-1][1] : parts[-1][2]])
    subject_pairs = _name(der, subject[1], subject[2])
    issuer_pairs = _name(der, issuer[1], issuer[2])
    now = now or dt.datetime.now(dt.UTC)
    return {
        "subject": ", ".join(f"{k}={v}" for k, v in subject_pairs),
        "subject_cn": next((v for k, v in subject_pairs if k == "CN"), None),
        "issuer": ", ".join(f"{k}={v}" for k, v in issuer_pairs),
        "issuer_cn": next((v for k, v in issuer_pairs if k == "CN"), None),
        "san": san,
        "not_before": not_before.isoformat(),
        "not_after": not_after.isoformat(),
        "days_left": int((not_after - now).total_seconds() / 86400),
        "self_signed": der[subject[1] : subject[2]] == der[issuer[1] : issuer[2]],
    }


# --------------------------------------------------------------------------- host name (libpq verify-full)


def _dns_name_matches(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*.") and len(host) > len(pattern) - 1:
        suffix = pattern[1:]
        return host.endswith(suffix) and "." not in host[: -len(suffix)]
    return pattern == host


def _names_examined(cert: dict[str, Any]) -> list[str]:
    """The names libpq compares with the host: the SAN DNS and IP entries, else the subject CN."""
    names = [n.split(":", 1)[1] for n in cert["san"] if n.startswith(("DNS:", "IP:"))]
    if not names and cert.get("subject_cn"):
        names = [cert["subject_cn"]]
    return names


def hostname_matches(cert: dict[str, Any], host: str) -> bool:
    try:
        host_ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        host_ip = None
    for entry in cert["san"]:
        kind, _, value = entry.partition(":")
        if kind == "DNS" and _dns_name_matches(value, host):
            return True
        if kind == "IP" and host_ip is not None and ipaddress.ip_address(value) == host_ip:
            return True
    if not any(n.startswith(("DNS:", "IP:")) for n in cert["san"]) and cert.get("subject_cn"):
        return _dns_name_matches(cert["subject_cn"], host)
    return False


def mismatch_text(cert: dict[str, Any], host: str) -> str:
    names = _names_examined(cert)
    if not names:
        return "could not get server's host name from server certificate"
    others = len(names) - 1
    extra = f" (and {others} other name{'s' if others > 1 else ''})" if others else ""
    return f'server certificate for "{names[0]}"{extra} does not match host name "{host}"'


# --------------------------------------------------------------------------- root certificates (libpq rules)


@dataclass
class Roots:
    """Where libpq would look for root certificates, and whether it will verify the chain."""

    origin: str
    """sslrootcert | PGSSLROOTCERT | default (~/.postgresql/root.crt)"""
    path: str
    system: bool = False
    exists: bool = False
    load_error: str | None = None

    @property
    def usable(self) -> bool:
        return self.system or (self.exists and self.load_error is None)

    def describe(self) -> str:
        if self.system:
            return "the system's trusted roots (sslrootcert=system)"
        if self.exists:
            return f"sslrootcert {self.path}" if self.origin != "default" else f"{self.path} (libpq's default)"
        return "the system's trusted roots"


def _libpq_major() -> int:
    try:
        from psycopg import pq

        return pq.version() // 10000
    except Exception:
        return 0


def find_roots(ctx: CheckContext) -> Roots:
    value = ctx.target.params.get("sslrootcert")
    origin = "sslrootcert"
    if not value and os.environ.get("PGSSLROOTCERT"):
        value, origin = os.environ["PGSSLROOTCERT"], "PGSSLROOTCERT"
    if not value:
        value, origin = str(Path.home() / ".postgresql" / "root.crt"), "default"
    if value == "system" and origin != "default":
        modern = _libpq_major() >= 16
        return Roots(origin, value, system=modern, exists=modern)
    roots = Roots(origin, value, exists=os.path.exists(value))
    if roots.exists:
        try:
            ssl.create_default_context(cafile=value)
        except (ssl.SSLError, OSError, ValueError) as exc:
            roots.load_error = getattr(exc, "strerror", None) or str(exc)
    return roots


def _client_context() -> ssl.SSLContext:
    """What libpq >= 17 offers: TLS 1.2 or newer, ALPN ``postgresql``; verification is set by the caller."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols([ALPN])
    context.check_hostname = False
    return context


def _verifying_context(roots: Roots) -> ssl.SSLContext:
    context = _client_context()
    context.verify_mode = ssl.CERT_REQUIRED
    if roots.usable and not roots.system:
        context.load_verify_locations(cafile=roots.path)
    else:
        context.load_default_certs()
    return context


def _plain_context() -> ssl.SSLContext:
    context = _client_context()
    context.verify_mode = ssl.CERT_NONE
    return context


# --------------------------------------------------------------------------- wire


@dataclass
class Reply:
    kind: str
    """S | N | E | garbage | spoke-first | eof | reset | timeout"""
    data: bytes = b""
    error: dict[str, str] = field(default_factory=dict)


def _read_error(sock: socket.socket, first: bytes) -> dict[str, str]:
    data = first
    while len(data) < 5:
        chunk = sock.recv(5 - len(data))
        if not chunk:
            return {}
        data += chunk
    (length,) = struct.unpack("!I", data[1:5])
    body = data[5:]
    while len(body) < min(length - 4, 65536):
        chunk = sock.recv(min(length - 4, 65536) - len(body))
        if not chunk:
            break
        body += chunk
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return fields


def negotiate(sock: socket.socket, timeout: float) -> Reply:
    """Send the SSLRequest and read the server's one-byte answer (or whatever else it says)."""
    sock.settimeout(timeout)
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            early = sock.recv(_PEEK_BYTES, socket.MSG_PEEK)
            return Reply("spoke-first", early) if early else Reply("eof")
        sock.sendall(SSL_REQUEST)
        answer = sock.recv(1)
    except TimeoutError:
        return Reply("timeout")
    except (ConnectionResetError, BrokenPipeError):
        return Reply("reset")
    if not answer:
        return Reply("eof")
    if answer in (b"S", b"N"):
        readable, _, _ = select.select([sock], [], [], 0)
        more = sock.recv(_PEEK_BYTES, socket.MSG_PEEK) if readable else b""
        return Reply("garbage", answer + more) if more else Reply(answer.decode())
    if answer == b"E":
        with contextlib.suppress(OSError, struct.error):
            return Reply("E", answer, _read_error(sock, answer))
        return Reply("garbage", answer)
    sock.settimeout(0.2)
    with contextlib.suppress(OSError):
        answer += sock.recv(_PEEK_BYTES)
    return Reply("garbage", answer)


@dataclass
class Handshake:
    ok: bool
    der: bytes | None = None
    protocol: str | None = None
    cipher: str | None = None
    bits: int | None = None
    alpn: str | None = None
    verify_error: str | None = None
    error: str | None = None
    timed_out: bool = False
    clean_close: bool = False


def handshake(sock: socket.socket, context: ssl.SSLContext, sni: str | None, timeout: float) -> Handshake:
    """TLS on an accepted SSLRequest; the socket is closed afterwards, with close_notify when possible."""
    sock.settimeout(timeout)
    try:
        tls = context.wrap_socket(sock, server_hostname=sni, do_handshake_on_connect=False)
    except (ssl.SSLError, OSError, ValueError) as exc:
        _close(sock)
        return Handshake(False, error=str(exc))
    try:
        tls.do_handshake()
    except ssl.SSLCertVerificationError as exc:
        _close(tls)
        return Handshake(False, verify_error=exc.verify_message or exc.reason or str(exc))
    except TimeoutError:
        _close(tls)
        return Handshake(False, error="the TLS handshake timed out", timed_out=True)
    except (ssl.SSLError, OSError) as exc:
        _close(tls)
        return Handshake(False, error=_ssl_error_text(exc))
    cipher = tls.cipher()
    result = Handshake(
        True,
        der=tls.getpeercert(binary_form=True),
        protocol=tls.version(),
        cipher=cipher[0] if cipher else None,
        bits=cipher[2] if cipher else None,
        alpn=tls.selected_alpn_protocol(),
    )
    try:
        tls.unwrap().close()
        result.clean_close = True
    except (ssl.SSLError, OSError, ValueError):
        _close(tls)
    return result


def _ssl_error_text(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError) or (
        isinstance(exc, ssl.SSLSyscallError) and not getattr(exc, "errno", None)
    ):
        return "SSL SYSCALL error: EOF detected"
    if isinstance(exc, ConnectionResetError):
        return "SSL SYSCALL error: Connection reset by peer"
    if isinstance(exc, ssl.SSLError):
        return f"SSL error: {(exc.reason or str(exc)).lower().replace('_', ' ')}"
    return str(exc)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()


# --------------------------------------------------------------------------- the probe


@dataclass
class _Verdict:
    status: Status
    summary: str
    next_step: str | None = None
    failure_text: str | None = None
    notes: list[str] = field(default_factory=list)


def _where(host: str, address: Address) -> str:
    return f'"{host}"' + ("" if host == address.ip else f" ({address.ip})")


def _pick_address(ctx: CheckContext) -> tuple[Address, socket.socket | None]:
    sock = ctx.facts.pop("tcp_socket", None)
    reached = ctx.facts.get("tcp_address")
    if isinstance(reached, Address):
        return reached, sock
    if sock is not None:
        _close(sock)
    return ctx.addresses[0], None


def _neon(ctx: CheckContext) -> bool:
    return bool(ctx.target.neon or ctx.facts.get("neon"))


def run(ctx: CheckContext) -> ProbeResult:
    if not ctx.addresses:
        return ProbeResult(name, Status.SKIP, "no TCP address: TLS is not used over a Unix socket")
    address, sock = _pick_address(ctx)
    hosts: dict[tuple[str, int], str] = ctx.facts.get("address_hosts") or {}
    host = hosts.get((address.ip, address.port)) or ctx.target.host or address.ip
    sslsni = ctx.target.params.get("sslsni", "1") != "0"
    sni = host if sslsni and not is_ip(host) else None
    mode = ctx.target.sslmode
    roots = find_roots(ctx)
    details: dict[str, Any] = {
        "address": endpoint(address.ip, address.port),
        "host": host,
        "sni": sni,
        "sslmode": mode,
        "reused_tcp_connection": sock is not None,
    }
    connections = 0

    def fresh() -> socket.socket:
        nonlocal connections
        connections += 1
        return connect(address, ctx.step_timeout())

    try:
        if sock is None:
            sock = fresh()
        else:
            connections += 1
    except OSError as exc:
        details["connections"] = connections
        reason = "timeout expired" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        return _result(
            ctx,
            _Verdict(
                Status.FAIL,
                f"cannot reconnect to {details['address']}: {reason}",
                "The server stopped answering between the tcp and tls steps: run the check again",
                f"connection to server at {_where(host, address)}, port {address.port} failed: {reason}",
            ),
            details,
        )

    timeout = ctx.step_timeout()
    details["timeout_s"] = round(timeout, 2)
    direct = ctx.target.params.get("sslnegotiation") == "direct"
    details["negotiation"] = "direct" if direct else "postgres"
    if direct and mode not in STRONG_MODES:
        _close(sock)
        details["connections"] = connections
        return _result(ctx, _weak_direct(mode), details)
    reply = Reply("S") if direct else negotiate(sock, timeout)
    details["server_answer"] = "direct TLS" if direct else reply.kind
    if reply.kind != "S":
        _close(sock)
        details["connections"] = connections
        return _result(ctx, _not_tls(ctx, reply, mode, host, address, details), details)

    ctx.facts["tls_supported"] = True
    first = handshake(sock, _verifying_context(roots), sni, ctx.step_timeout())
    cert_source = first
    if not first.ok and first.verify_error is not None and not ctx.facts.get("abandoned"):
        try:
            second_sock = fresh()
        except OSError:
            second_sock = None
        if second_sock is not None:
            if direct or negotiate(second_sock, ctx.step_timeout()).kind == "S":
                cert_source = handshake(second_sock, _plain_context(), sni, ctx.step_timeout())
            else:
                _close(second_sock)
    details["connections"] = connections
    prefix = f"connection to server at {_where(host, address)}, port {address.port} failed: "
    if not first.ok and first.verify_error is None:
        text = first.error or "TLS handshake failed"
        if direct:
            summary = (
                f"direct TLS (sslnegotiation=direct) with {details['address']} failed: {text}; the server does not "
                "take TLS straight away (PostgreSQL 17 or newer does)"
            )
            next_step = "Remove sslnegotiation=direct (the default, sslnegotiation=postgres, works with every server)"
        else:
            summary = f"the TLS handshake with {details['address']} failed: {text}"
            next_step = (
                "The server accepted the SSLRequest but not the handshake: check its ssl settings "
                "(ssl_min_protocol_version, certificate files) or a middlebox on the path"
            )
        failure = prefix + ("timeout expired" if first.timed_out else text)
        if mode in ("prefer", "allow") and not direct:
            summary += f"; with sslmode={mode} libpq then retries without TLS (plain text)"
            return _result(ctx, _Verdict(Status.WARN, summary, next_step, failure), details)
        return _result(ctx, _Verdict(Status.FAIL, summary, next_step, failure), details)
    details.update(
        {
            "protocol": cert_source.protocol,
            "cipher": cert_source.cipher,
            "cipher_bits": cert_source.bits,
            "alpn": cert_source.alpn,
            "closed_with_close_notify": first.clean_close if first.ok else cert_source.clean_close,
        }
    )
    if direct and cert_source.der and cert_source.alpn != ALPN:
        return _result(
            ctx,
            _Verdict(
                Status.FAIL,
                "direct TLS worked, but the server did not agree to ALPN 'postgresql', which libpq requires",
                "Remove sslnegotiation=direct, or put a proxy that speaks ALPN 'postgresql' in front",
                prefix + "direct SSL connection was established without ALPN protocol negotiation extension",
            ),
            details,
        )
    ctx.facts["tls_version"] = cert_source.protocol
    ctx.facts["tls_cipher"] = cert_source.cipher
    cert: dict[str, Any] | None = None
    if cert_source.der:
        try:
            cert = read_certificate(cert_source.der)
        except (ValueError, IndexError, UnicodeError) as exc:
            details["certificate_error"] = f"could not decode the certificate: {exc}"
    details["certificate"] = cert
    verdict = _judge(ctx, mode, roots, first, cert, host, sni, details)
    return _result(ctx, verdict, details)


def _result(ctx: CheckContext, verdict: _Verdict, details: dict[str, Any]) -> ProbeResult:
    summary = verdict.summary
    if verdict.notes:
        details["notes"] = verdict.notes
    redactor = ctx.target.redactor
    matches = explain(ctx, verdict.failure_text) if verdict.status in (Status.FAIL, Status.WARN) else []
    return ProbeResult(
        name,
        verdict.status,
        redactor(summary),
        details=redactor.obj(details),
        matches=matches,
        next_step=redactor(verdict.next_step) if verdict.next_step else None,
    )


def _not_tls(
    ctx: CheckContext, reply: Reply, mode: str, host: str, address: Address, details: dict[str, Any]
) -> _Verdict:
    where = details["address"]
    prefix = f"connection to server at {_where(host, address)}, port {address.port} failed: "
    if reply.kind == "N":
        ctx.facts["tls_supported"] = False
        if _neon(ctx):
            return _Verdict(
                Status.FAIL,
                f"{where} answered 'N' (no TLS), but Neon always speaks TLS: this is not Neon's proxy",
                "Check the host and port; something between you and Neon intercepts the connection",
                NEON_INSECURE_TEXT,
            )
        if mode in ("require", *VERIFY_MODES):
            return _Verdict(
                Status.FAIL,
                f"the server does not support TLS (it answered 'N' to the SSLRequest), but sslmode={mode} requires it",
                "Turn TLS on in the server (ssl = on with a certificate in postgresql.conf), or make sure this is the "
                "right server; sslmode=prefer would connect without encryption",
                NO_SSL_TEXT,
            )
        if mode in ("prefer", "allow"):
            return _Verdict(
                Status.WARN,
                f"the server does not support TLS: with sslmode={mode} libpq connects without encryption "
                "(the password and all data travel in plain text)",
                "Turn TLS on in the server, then use sslmode=require (or verify-full) so it cannot silently fall back",
                NO_SSL_TEXT,
            )
        return _Verdict(
            Status.PASS,
            "the server does not offer TLS, and sslmode=disable does not ask for it (plain text)",
            notes=["sslmode=disable: fine on a trusted network or a Unix socket, unwise anywhere else"],
        )
    if reply.kind == "timeout":
        return _Verdict(
            Status.FAIL,
            f"{where} accepted the connection but did not answer the SSLRequest within {details['timeout_s']:g} s",
            "Something accepts TCP on that port but does not speak PostgreSQL (a stuck server, a proxy, a "
            "firewall that holds connections): check the port and the server's state",
            prefix + "timeout expired",
        )
    if reply.kind == "E":
        message = reply.error.get("M", "an error")
        details["server_error"] = reply.error
        return _Verdict(
            Status.FAIL,
            f"the server answered the SSLRequest with an error: {message}",
            "Read the server's message; an old server or a non-standard proxy may not support TLS negotiation",
            message,
        )
    if reply.kind in ("eof", "reset"):
        what = "closed the connection" if reply.kind == "eof" else "reset the connection"
        return _Verdict(
            Status.FAIL,
            f"{where} {what} instead of answering the SSLRequest: not a PostgreSQL server, or one that drops "
            "this client",
            "Check the port; a server or proxy that hangs up at once may also be refusing your IP address",
            prefix + "server closed the connection unexpectedly",
        )
    data = reply.data
    details["server_bytes"] = data[:64].decode("latin-1").encode("unicode_escape").decode("ascii")
    spoke = "spoke first" if reply.kind == "spoke-first" else "answered the SSLRequest"
    return _Verdict(
        Status.FAIL,
        f"{where} is not a PostgreSQL server: it {spoke} with {_looks_like(data)}",
        "Check the port in the connection string: PostgreSQL and Neon listen on 5432",
        prefix + f"received invalid response to SSL negotiation: {chr(data[0]) if data else '?'}",
    )


def _weak_direct(mode: str) -> _Verdict:
    return _Verdict(
        Status.FAIL,
        f"libpq refuses sslnegotiation=direct with sslmode={mode}: direct TLS has no plain-text fallback",
        "Use sslmode=require (or verify-full) with sslnegotiation=direct, or drop sslnegotiation",
        f'weak sslmode "{mode}" may not be used with sslnegotiation=direct '
        '(use "require", "verify-ca", or "verify-full")',
    )


def _looks_like(data: bytes) -> str:
    preview = data[:40].decode("latin-1").encode("unicode_escape").decode("ascii")
    if data.startswith(b"HTTP/"):
        kind = "an HTTP reply"
    elif data.startswith(b"SSH-"):
        kind = "an SSH banner"
    elif data[:1] in (b"\x15", b"\x16"):
        kind = "a TLS record (a server that expects TLS straight away)"
    elif len(data) > 4 and data[4:5] == b"\x0a" and data[3:4] == b"\x00":
        kind = "a MySQL greeting"
    elif data[:1] in (b"+", b"-") or data.startswith(b"220"):
        kind = "a text protocol greeting (Redis, SMTP, FTP?)"
    else:
        kind = "unexpected bytes"
    return f"{kind}: '{preview}'"


def _judge(
    ctx: CheckContext,
    mode: str,
    roots: Roots,
    first: Handshake,
    cert: dict[str, Any] | None,
    host: str,
    sni: str | None,
    details: dict[str, Any],
) -> _Verdict:
    chain_ok = first.ok
    name_ok = cert is not None and hostname_matches(cert, host)
    libpq_chain = roots.usable and mode not in ("disable", "allow")
    checks = "chain and host name" if mode == "verify-full" else "chain" if libpq_chain else "nothing"
    details["verification"] = {
        "against": roots.describe() if roots.usable else "the system's trusted roots (libpq itself checks nothing)",
        "chain": "ok" if chain_ok else "failed",
        "chain_error": first.verify_error,
        "hostname": "match" if name_ok else "mismatch" if cert else "unknown",
        "libpq_checks": checks,
    }
    if roots.load_error:
        details["verification"]["root_error"] = roots.load_error
    described = f"{cert_summary(cert)}; {details.get('protocol')}" if cert else str(details.get("protocol"))

    if mode == "disable":
        if _neon(ctx):
            return _Verdict(
                Status.FAIL,
                "sslmode=disable: Neon refuses connections without TLS (connection is insecure)",
                "Use sslmode=require, or better sslmode=verify-full&sslrootcert=system (libpq >= 16)",
                NEON_INSECURE_TEXT,
            )
        return _Verdict(
            Status.PASS,
            f"the server offers TLS ({described}), but sslmode=disable will not use it",
            notes=["with sslmode=disable everything, password authentication included, travels in plain text"],
        )
    if _neon(ctx) and sni is None and neon_without_sni(ctx):
        why = "sslsni=0" if not is_ip(host) else f"the host {host} is an IP address"
        return _Verdict(
            Status.FAIL,
            f"no TLS SNI is sent ({why}), so Neon's proxy cannot tell which endpoint you want",
            "Connect with the Neon host name and without sslsni=0, or add options=endpoint%3D<endpoint-id>",
            ENDPOINT_MISSING_TEXT,
        )
    root_problem = _root_problem(mode, roots)
    if root_problem is not None:
        if chain_ok and name_ok:
            root_problem.notes.append(
                "the certificate does verify against the system's trusted roots, so sslrootcert=system "
                "(libpq >= 16) would work"
            )
        return root_problem
    why_chain = (
        f"sslmode={mode} checks the certificate chain"
        if mode in VERIFY_MODES
        else f"sslmode={mode} checks the chain like verify-ca because a root certificate is present ({roots.path})"
    )
    if libpq_chain and not chain_ok:
        problem = f"the server's certificate does not verify against {roots.describe()}: {first.verify_error}"
        if mode == "prefer":
            return _Verdict(
                Status.WARN,
                f"{problem}; {why_chain}, fails, and falls back to a connection without TLS",
                "Point sslrootcert at the CA that signed the server's certificate, or remove the root certificate",
                VERIFY_FAILED_TEXT,
            )
        return _Verdict(
            Status.FAIL,
            f"{problem}; {why_chain} and rejects it",
            "Point sslrootcert at the CA that signed the server's certificate (for Neon: sslrootcert=system); "
            "a self-signed server needs its own certificate as the root",
            VERIFY_FAILED_TEXT,
        )
    if mode == "verify-full" and not name_ok:
        names = ", ".join(_names_examined(cert)) if cert else "unknown"
        return _Verdict(
            Status.FAIL,
            f"the certificate is for {names}, not {host}: sslmode=verify-full checks the host name and rejects it",
            "Connect with a host name the certificate lists, or fix the server's certificate (sslmode=verify-ca "
            "skips the name check)",
            mismatch_text(cert, host) if cert else VERIFY_FAILED_TEXT,
        )
    notes: list[str] = []
    status, summary, next_step, failure = Status.PASS, f"TLS works: {described}", None, None
    if libpq_chain:
        summary += f"; verified against {roots.describe()}"
        if mode == "verify-full":
            summary += " and the host name matches"
        elif not name_ok:
            notes.append(f"the certificate does not list {host}: sslmode=verify-full would reject it")
        else:
            notes.append("the host name matches too: sslmode=verify-full would also pass")
    elif chain_ok and name_ok:
        summary += f"; sslmode={mode} does not check the certificate, but it verifies against the system's roots"
        notes.append(
            "sslmode=verify-full&sslrootcert=system (libpq >= 16) would also protect against a man-in-the-middle"
        )
    elif chain_ok:
        status = Status.WARN
        summary += (
            f"; the certificate is trusted but does not list {host}: sslmode={mode} accepts it, verify-full would not"
        )
        next_step = "Use a host name the certificate lists, or fix the certificate before moving to verify-full"
        failure = mismatch_text(cert, host) if cert else None
    else:
        status = Status.WARN
        summary += (
            f"; sslmode={mode} accepts this certificate without checking it ({first.verify_error}): the traffic is "
            "encrypted, but a man-in-the-middle would go unnoticed"
        )
        next_step = (
            "Get the CA certificate that signed the server's certificate and use "
            "sslmode=verify-full&sslrootcert=/path/to/ca.pem"
        )
    if mode == "allow":
        status = Status.WARN
        summary += "; but sslmode=allow first tries without TLS, so libpq uses plain text whenever the server allows it"
        next_step = next_step or "Use sslmode=require (or verify-full)"
    if cert is not None and cert["days_left"] < EXPIRY_WARN_DAYS and status is not Status.FAIL:
        status = Status.WARN
        left = cert["days_left"]
        summary += (
            f"; sslmode={mode} accepts the expired certificate only because it checks nothing"
            if left < 0
            else f"; the certificate expires in {_days(left)}"
        )
        next_step = next_step or "Renew the server's certificate"
    return _Verdict(status, summary, next_step, failure, notes)


def _root_problem(mode: str, roots: Roots) -> _Verdict | None:
    if roots.path == "system":
        major = _libpq_major()
        if not roots.system:
            return _Verdict(
                Status.FAIL,
                f"sslrootcert=system needs libpq >= 16 (this libpq is {major}): it looks for a file named 'system'",
                "Upgrade libpq (psycopg[binary] ships a new one), or set sslrootcert to your OS CA bundle, e.g. "
                "/etc/ssl/certs/ca-certificates.crt",
                'root certificate file "system" does not exist',
            )
        if mode != "verify-full":
            return _Verdict(
                Status.FAIL,
                f"libpq refuses sslrootcert=system with sslmode={mode}",
                "Use sslmode=verify-full with sslrootcert=system",
                f'weak sslmode "{mode}" may not be used with sslrootcert=system (use "verify-full")',
            )
        return None
    if roots.load_error:
        return _Verdict(
            Status.FAIL,
            f"libpq cannot read the root certificate file {roots.path}: {roots.load_error}",
            "Point sslrootcert at a PEM file with the CA certificate(s)",
            f'could not read root certificate file "{roots.path}": {roots.load_error}',
        )
    if mode in VERIFY_MODES and not roots.usable:
        return _Verdict(
            Status.FAIL,
            f"sslmode={mode} needs a root certificate, and {roots.path} does not exist",
            "Add sslrootcert=system (libpq >= 16, for a public CA such as Neon's) or sslrootcert=/path/to/ca.pem",
            f'root certificate file "{roots.path}" does not exist\nEither provide the file, use the system\'s '
            "trusted roots with sslrootcert=system, or change sslmode to disable server certificate verification.",
        )
    return None


def cert_summary(cert: dict[str, Any]) -> str:
    first_dns = next((n[4:] for n in cert["san"] if n.startswith("DNS:")), None)
    subject = cert.get("subject_cn") or first_dns or cert.get("subject") or "?"
    issuer = cert.get("issuer_cn") or _attribute(cert.get("issuer") or "", "O") or cert.get("issuer") or "?"
    left = cert["days_left"]
    validity = f"expired {_days(-left)} ago" if left < 0 else f"{_days(left)} left"
    return f"certificate for {subject} from {issuer}, {validity}"


def _attribute(name: str, key: str) -> str | None:
    return next((part.split("=", 1)[1] for part in name.split(", ") if part.startswith(key + "=")), None)


def _days(count: int) -> str:
    return f"{count} day{'' if count == 1 else 's'}"
