"""tls: SSLRequest, a TLS handshake with SNI, the certificate, and what the URL's sslmode makes of it.

One handshake per check. Where libpq will verify the chain (verify-ca, verify-full, or a root file
present), OpenSSL verifies it in that handshake exactly as libpq will, and the ssl module decodes the
leaf: the healthy path imports nothing more. Where libpq verifies nothing, the handshake verifies
nothing either (a failed verification would send an alert the server logs as an error), and the
served chain is checked offline with cryptography's verifier against the system's roots, for the
notes and for a TLS-intercepting proxy. A Neon host is the exception: its proxy serves a publicly
trusted chain, so OpenSSL verifies it against the system's roots in the one handshake, and the
healthy path needs no cryptography (its import costs more than the rest of the check's own work).
When OpenSSL rejects a chain, a second, unverified handshake
fetches it and cryptography says why: expired, not yet valid, an intermediate left out, an unknown CA.
The host name follows libpq's verify-full rules. The whole step ends at one deadline.
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
import sys
import threading
import time
import warnings
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


# --------------------------------------------------------------------------- certificates (cryptography)

_warm: threading.Thread | None = None


def warm_up(ctx: CheckContext) -> None:
    """Import cryptography's X.509 modules in the background while the network steps wait on the server.

    Only where the check will need them on a healthy path: libpq verifies nothing (the chain is checked
    offline) or a client certificate is to be read. The import costs ~35 ms of a ~200 ms check; started
    before TCP connects, part of it hides behind the round trips. Later imports wait for it.
    """
    global _warm
    mode = ctx.target.sslmode
    verified_in_handshake = mode in ("disable", *VERIFY_MODES) or (_neon(ctx) and mode in ("prefer", "require"))
    if verified_in_handshake and client_files(ctx)[0] is None:
        return
    if _warm is None and "cryptography.x509.verification" not in sys.modules:
        _warm = threading.Thread(target=_import_cryptography, name="tls-warm-up", daemon=True)
        _warm.start()


def _import_cryptography() -> None:
    with contextlib.suppress(ImportError):
        import cryptography.x509.verification  # noqa: F401

_NAME_KEYS = {"2.5.4.5": "serialNumber", "1.2.840.113549.1.9.1": "emailAddress"}


def _load_der(der: bytes) -> Any:
    from cryptography import x509

    return x509.load_der_x509_certificate(der)


def _name_pairs(name: Any) -> list[tuple[str, str]]:
    pairs = []
    for attribute in name:
        key = _NAME_KEYS.get(attribute.oid.dotted_string) or attribute.rfc4514_attribute_name
        value = attribute.value if isinstance(attribute.value, str) else attribute.value.decode("latin-1")
        pairs.append((key, value))
    return pairs


def _san(cert: Any) -> list[str]:
    from cryptography import x509

    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    kinds = ((x509.DNSName, "DNS"), (x509.IPAddress, "IP"), (x509.RFC822Name, "email"),
             (x509.UniformResourceIdentifier, "URI"))
    return [f"{label}:{entry.value}" for entry in names for kind, label in kinds if isinstance(entry, kind)]


def read_certificate(der: bytes, now: dt.datetime | None = None) -> dict[str, Any]:
    """Subject, issuer, SAN and validity of an X.509 certificate, from its DER bytes (ValueError if it is none)."""
    cert = _load_der(der)
    return describe_certificate(cert, now)


_STDLIB_NAMES = {"commonName": "CN", "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
                 "organizationName": "O", "organizationalUnitName": "OU"}


def stdlib_certificate(peer: dict[str, Any], now: dt.datetime | None = None) -> dict[str, Any]:
    """The same fields from the ssl module's decoding of a verified peer (no cryptography import on that path)."""

    def pairs(rdns: Any) -> list[tuple[str, str]]:
        return [(_STDLIB_NAMES.get(key, key), value) for rdn in rdns for key, value in rdn]

    san = []
    for kind, value in peer.get("subjectAltName", ()):
        if kind == "DNS":
            san.append(f"DNS:{value}")
        elif kind == "IP Address":
            san.append(f"IP:{ipaddress.ip_address(value.strip())}")
        elif kind in ("email", "URI"):
            san.append(f"{kind}:{value}")
    subject, issuer = pairs(peer.get("subject", ())), pairs(peer.get("issuer", ()))
    not_before, not_after = cert_time(peer["notBefore"]), cert_time(peer["notAfter"])
    return _certificate_fields(subject, issuer, san, not_before, not_after, subject == issuer, now)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def cert_time(text: str) -> dt.datetime:
    """OpenSSL's printed time (``Jun  1 12:00:00 2030 GMT``) as UTC, like ``ssl.cert_time_to_seconds`` but
    without ``time.strptime``, whose first call costs ~4 ms (it imports _strptime and reads the locale)."""
    month, day, clock, year, zone = text.split()
    if zone != "GMT" or month not in _MONTHS:
        raise ValueError(f"time data {text!r} is not OpenSSL's GMT time")
    hour, minute, second = (int(part.partition(".")[0]) for part in clock.split(":"))
    return dt.datetime(int(year), _MONTHS.index(month) + 1, int(day), hour, minute, second, tzinfo=dt.UTC)


def _certificate_fields(
    subject: list[tuple[str, str]],
    issuer: list[tuple[str, str]],
    san: list[str],
    not_before: dt.datetime,
    not_after: dt.datetime,
    self_signed: bool,
    now: dt.datetime | None,
) -> dict[str, Any]:
    """One shape for a certificate, whichever library read it (the ssl module or cryptography)."""
    now = now or dt.datetime.now(dt.UTC)
    return {
        "subject": ", ".join(f"{k}={v}" for k, v in subject),
        "subject_cn": next((v for k, v in subject if k == "CN"), None),
        "issuer": ", ".join(f"{k}={v}" for k, v in issuer),
        "issuer_cn": next((v for k, v in issuer if k == "CN"), None),
        "san": san,
        "not_before": not_before.isoformat(),
        "not_after": not_after.isoformat(),
        "days_left": int((not_after - now).total_seconds() / 86400),
        "self_signed": self_signed,
    }


def describe_certificate(cert: Any, now: dt.datetime | None = None) -> dict[str, Any]:
    return _certificate_fields(
        _name_pairs(cert.subject),
        _name_pairs(cert.issuer),
        _san(cert),
        cert.not_valid_before_utc,
        cert.not_valid_after_utc,
        cert.subject == cert.issuer,
        now,
    )


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
    context: ssl.SSLContext | None = field(default=None, repr=False, compare=False)
    """A client context that trusts exactly ``path``, made while checking that OpenSSL can read it."""

    @property
    def usable(self) -> bool:
        return self.system or (self.exists and self.load_error is None)

    def describe(self) -> str:
        if self.system:
            return "the system's trusted roots (sslrootcert=system)"
        if self.exists:
            return f"sslrootcert {self.path}" if self.origin != "default" else f"{self.path} (libpq's default)"
        return "the system's trusted roots"


SYSTEM_ROOTS = Roots("system", "system", system=True, exists=True)
"""The roots ``sslrootcert=system`` names: OpenSSL's default paths (SSL_CERT_FILE, SSL_CERT_DIR honoured)."""


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
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        try:
            context.load_verify_locations(cafile=value)
        except (ssl.SSLError, OSError, ValueError) as exc:
            roots.load_error = getattr(exc, "strerror", None) or str(exc)
        else:
            roots.context = context
    return roots


_TLS_VERSIONS = {
    "tlsv1": ssl.TLSVersion.TLSv1,
    "tlsv1.1": ssl.TLSVersion.TLSv1_1,
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
}


def tls_versions(params: dict[str, str]) -> tuple[str, str | None]:
    """The client's ssl_min_protocol_version (libpq's default TLSv1.2) and ssl_max_protocol_version."""
    low = params.get("ssl_min_protocol_version") or "TLSv1.2"
    high = params.get("ssl_max_protocol_version") or None
    return low, high


def _client_context(params: dict[str, str], roots: Roots | None = None) -> ssl.SSLContext:
    """What libpq offers: its TLS versions, ALPN ``postgresql``; with ``roots``, OpenSSL verifies the chain as
    libpq will (the host name is checked by :func:`hostname_matches`), else nothing is verified here."""
    if roots is not None and roots.context is not None:
        context = roots.context
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
    if roots is None:
        context.verify_mode = ssl.CERT_NONE
    elif roots.system:
        context.load_default_certs()
    elif roots.context is None:
        context.load_verify_locations(cafile=roots.path)
    low, high = tls_versions(params)
    with contextlib.suppress(ValueError, KeyError):
        context.minimum_version = _TLS_VERSIONS[low.lower()]
    if high:
        with contextlib.suppress(ValueError, KeyError):
            context.maximum_version = _TLS_VERSIONS[high.lower()]
    context.set_alpn_protocols([ALPN])
    return context


def _system_roots_file() -> str | None:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def load_roots(roots: Roots) -> list[Any]:
    """The root certificates libpq would trust for this string (sslrootcert, else the system's)."""
    from cryptography import x509

    path = roots.path if roots.usable and not roots.system else _system_roots_file()
    if path is None:
        return []
    try:
        data = Path(path).read_bytes()
    except OSError:
        return []
    end = b"-----END CERTIFICATE-----"
    certs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for block in data.split(end)[:-1]:
            with contextlib.suppress(ValueError):
                certs.append(x509.load_pem_x509_certificate(block + end))
    return certs


@dataclass
class ChainCheck:
    """The served chain checked offline against the roots libpq would use."""

    ok: bool
    error: str | None = None
    """OpenSSL's words for the first problem, as libpq would print them after 'certificate verify failed'."""
    problem: str | None = None
    """expired | not-yet-valid | issuer-expired | incomplete-chain | unknown-ca | self-signed | no-roots"""
    served: int = 0
    """How many certificates the server sent (the leaf and the intermediates it serves with it)."""


def verify_chain(chain: list[bytes], roots: list[Any], now: dt.datetime | None = None) -> ChainCheck:
    """Check the served chain against the roots offline, the way OpenSSL would (not the host name: see below).

    cryptography's verifier builds the path; its extension policy is relaxed to OpenSSL's (CA certificates
    need basicConstraints, a leaf may lack SAN or EKU) so that private CAs libpq accepts pass here too. The
    host name follows libpq's own rules (a CN when there is no SAN), in :func:`hostname_matches`.
    """
    from cryptography import x509
    from cryptography.x509.verification import Criticality, ExtensionPolicy, PolicyBuilder, Store

    now = now or dt.datetime.now(dt.UTC)
    if not chain:
        return ChainCheck(False, "no certificate", "unknown-ca")
    certs = [_load_der(der) for der in chain]
    leaf, served = certs[0], certs[1:]
    if not roots:
        return ChainCheck(False, "unable to get local issuer certificate", "no-roots", len(certs))
    ca_policy = ExtensionPolicy.permit_all().require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)

    def attempt(when: dt.datetime) -> bool:
        builder = PolicyBuilder().store(Store(roots)).time(when)
        builder = builder.extension_policies(ca_policy=ca_policy, ee_policy=ExtensionPolicy.permit_all())
        try:
            builder.build_client_verifier().verify(leaf, served)
        except Exception:
            return False
        return True

    if attempt(now):
        return ChainCheck(True, served=len(certs))
    if leaf.not_valid_after_utc < now:
        return ChainCheck(False, "certificate has expired", "expired", len(certs))
    if leaf.not_valid_before_utc > now:
        return ChainCheck(False, "certificate is not yet valid", "not-yet-valid", len(certs))
    for cert in served:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            return ChainCheck(False, "certificate has expired", "issuer-expired", len(certs))
    if leaf.subject == leaf.issuer and not served:
        return ChainCheck(False, "self-signed certificate", "self-signed", len(certs))
    last = certs[-1]
    if last.subject == last.issuer:
        return ChainCheck(False, "self-signed certificate in certificate chain", "unknown-ca", len(certs))
    if not served:
        return ChainCheck(False, "unable to get local issuer certificate", "incomplete-chain", len(certs))
    return ChainCheck(False, "unable to get local issuer certificate", "unknown-ca", len(certs))


# --------------------------------------------------------------------------- client certificate (libpq rules)


def client_files(ctx: CheckContext) -> tuple[str | None, str | None]:
    """The client certificate and key libpq would send: sslcert/sslkey, else ~/.postgresql/postgresql.{crt,key}."""
    params = ctx.target.params
    cert = params.get("sslcert") or os.environ.get("PGSSLCERT") or str(Path.home() / ".postgresql" / "postgresql.crt")
    key = params.get("sslkey") or os.environ.get("PGSSLKEY") or str(Path.home() / ".postgresql" / "postgresql.key")
    return (cert if os.path.isfile(cert) else None), (key if os.path.isfile(key) else None)


def key_permission_problem(path: str) -> str | None:
    """libpq's own check (fe-secure-openssl.c): 0600 or less if the user owns the key, 0640 or less if root does."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    if info.st_uid == os.geteuid() and info.st_mode & 0o077:
        return f"{oct(info.st_mode & 0o777)[2:]}, owned by you"
    if info.st_uid == 0 and info.st_uid != os.geteuid() and info.st_mode & 0o037:
        return f"{oct(info.st_mode & 0o777)[2:]}, owned by root"
    return None


def inspect_client_certificate(ctx: CheckContext, details: dict[str, Any]) -> _Verdict | None:
    cert_path, key_path = client_files(ctx)
    if cert_path is None:
        return None
    info: dict[str, Any] = {"path": cert_path, "key": key_path}
    details["client_certificate"] = info
    try:
        from cryptography import x509

        cert = describe_certificate(x509.load_pem_x509_certificate(Path(cert_path).read_bytes()))
    except (OSError, ValueError) as exc:
        info["error"] = str(exc)
        cert = None
    if cert is not None:
        info.update(subject=cert["subject"], cn=cert["subject_cn"], days_left=cert["days_left"])
        ctx.facts["client_cert_cn"] = cert["subject_cn"]
    if key_path is not None and (problem := key_permission_problem(key_path)):
        info["key_mode"] = problem
        return _Verdict(
            Status.FAIL,
            f"libpq refuses the client key {key_path}: others can read it (mode {problem})",
            f"chmod 0600 {key_path} (libpq sends no key that others can read: 0600 if you own it, 0640 if root does)",
            f'private key file "{key_path}" has group or world access; file must have permissions u=rw (0600) or '
            "less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root",
            exact=True,
        )
    return None


# --------------------------------------------------------------------------- wire


@dataclass
class Reply:
    """The server's one-byte answer to the SSLRequest (or what came instead)."""

    kind: str
    """S | N | E | garbage | spoke-first | eof | reset | timeout"""
    data: bytes = b""
    error: dict[str, str] = field(default_factory=dict)


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the step's deadline passed")
    return left


def _recv(sock: socket.socket, size: int, deadline: float) -> bytes:
    sock.settimeout(_left(deadline))
    return sock.recv(size)


def _read_error(sock: socket.socket, first: bytes, deadline: float) -> dict[str, str]:
    data = first
    while len(data) < 5:
        chunk = _recv(sock, 5 - len(data), deadline)
        if not chunk:
            return {}
        data += chunk
    (length,) = struct.unpack("!I", data[1:5])
    body = data[5:]
    while len(body) < min(length - 4, 65536):
        chunk = _recv(sock, min(length - 4, 65536) - len(body), deadline)
        if not chunk:
            break
        body += chunk
    fields = {}
    for part in body.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode("utf-8", "replace")
    return fields


def negotiate(sock: socket.socket, deadline: float) -> Reply:
    """Send the SSLRequest and read the server's one-byte answer (or whatever else it says), by the deadline."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            early = _recv(sock, _PEEK_BYTES, deadline)
            return Reply("spoke-first", early) if early else Reply("eof")
        sock.settimeout(_left(deadline))
        sock.sendall(SSL_REQUEST)
        answer = _recv(sock, 1, deadline)
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
        try:
            return Reply("E", answer, _read_error(sock, answer, deadline))
        except TimeoutError:
            return Reply("timeout", answer)
        except (OSError, struct.error):
            return Reply("garbage", answer)
    with contextlib.suppress(OSError):
        answer += _recv(sock, _PEEK_BYTES, min(deadline, time.monotonic() + 0.2))
    return Reply("garbage", answer)


@dataclass
class Handshake:
    """How one TLS handshake went, and what it showed."""

    ok: bool
    chain: list[bytes] = field(default_factory=list)
    """The certificates the server sent, leaf first, as DER."""
    protocol: str | None = None
    cipher: str | None = None
    bits: int | None = None
    alpn: str | None = None
    error: str | None = None
    alert: str | None = None
    """OpenSSL's reason for a failed handshake, e.g. ``tlsv1 alert protocol version``."""
    verify_error: str | None = None
    """OpenSSL's words when a verifying handshake rejected the chain, e.g. ``certificate has expired``."""
    peer: dict[str, Any] = field(default_factory=dict)
    """The leaf as the ssl module decodes it after a verifying handshake (empty otherwise)."""
    timed_out: bool = False
    clean_close: bool = False

    @property
    def der(self) -> bytes | None:
        return self.chain[0] if self.chain else None


def _served_chain(tls: ssl.SSLSocket) -> list[bytes]:
    """Every certificate the server sent. Python 3.13 has ``get_unverified_chain()``; 3.10-3.12 hold the same
    method on the private ``_sslobj``. Without either, only the leaf."""
    getter = getattr(tls, "get_unverified_chain", None) or getattr(
        getattr(tls, "_sslobj", None), "get_unverified_chain", None
    )
    if getter is not None:
        with contextlib.suppress(Exception):
            chain = getter() or []
            return [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain]  # type: ignore[attr-defined]
    leaf = tls.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _drive(tls: ssl.SSLSocket, operation: Any, deadline: float) -> Any:
    """Run a non-blocking TLS operation to its end or to the deadline, whatever the peer trickles."""
    while True:
        try:
            return operation()
        except ssl.SSLWantReadError:
            ready = select.select([tls], [], [], max(0.0, deadline - time.monotonic()))[0]
        except ssl.SSLWantWriteError:
            ready = select.select([], [tls], [], max(0.0, deadline - time.monotonic()))[1]
        if not ready:
            raise TimeoutError("the TLS handshake timed out")


def handshake(sock: socket.socket, context: ssl.SSLContext, sni: str | None, deadline: float) -> Handshake:
    """TLS on an accepted SSLRequest, ended by the deadline; the socket is closed afterwards, with close_notify."""
    sock.setblocking(False)
    try:
        tls = context.wrap_socket(sock, server_hostname=sni, do_handshake_on_connect=False)
    except (ssl.SSLError, OSError, ValueError) as exc:
        _close(sock)
        return Handshake(False, error=str(exc))
    try:
        _drive(tls, tls.do_handshake, deadline)
    except ssl.SSLCertVerificationError as exc:
        _close(tls)
        return Handshake(False, verify_error=exc.verify_message or exc.reason or str(exc))
    except TimeoutError:
        _close(tls)
        return Handshake(False, error="the TLS handshake timed out", timed_out=True)
    except (ssl.SSLError, OSError) as exc:
        _close(tls)
        reason = getattr(exc, "reason", None)
        return Handshake(False, error=_ssl_error_text(exc), alert=reason.lower().replace("_", " ") if reason else None)
    cipher = tls.cipher()
    result = Handshake(
        True,
        chain=_served_chain(tls),
        protocol=tls.version(),
        cipher=cipher[0] if cipher else None,
        bits=cipher[2] if cipher else None,
        alpn=tls.selected_alpn_protocol(),
        peer=tls.getpeercert() or {},
    )
    result.clean_close = _send_close_notify(tls)
    return result


def _send_close_notify(tls: ssl.SSLSocket) -> bool:
    """Close with close_notify, so the server logs nothing; its own close_notify is not waited for (a round
    trip that tells nothing), and what it leaves unread is drained so that the close is a FIN, not a reset."""
    try:
        tls.unwrap()
    except ssl.SSLWantReadError:
        pass
    except (ssl.SSLError, OSError, ValueError):
        _close(tls)
        return False
    _close(tls)
    return True


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
    exact: bool = False
    """The next step follows from what was measured (dates, chain, versions, timing) and beats a rule's fix."""


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
    deadline = time.monotonic() + timeout
    details["timeout_s"] = round(timeout, 2)
    direct = ctx.target.params.get("sslnegotiation") == "direct"
    details["negotiation"] = "direct" if direct else "postgres"
    details["connections"] = connections
    if direct and mode not in STRONG_MODES:
        _close(sock)
        return _result(ctx, _weak_direct(mode), details)
    reply = Reply("S") if direct else negotiate(sock, deadline)
    details["server_answer"] = "direct TLS" if direct else reply.kind
    details["tcp_connect_ms"] = ctx.facts.get("tcp_connect_ms")
    if reply.kind != "S":
        _close(sock)
        return _result(ctx, _not_tls(ctx, reply, mode, host, address, details), details)

    ctx.facts["tls_supported"] = True
    started = time.monotonic()
    verifying = roots.usable and mode not in ("disable", "allow")
    system_first = not verifying and mode in ("prefer", "require") and _neon(ctx)
    details["verified_in_handshake"] = "sslrootcert" if verifying else "system roots" if system_first else None
    context_roots = roots if verifying else SYSTEM_ROOTS if system_first else None
    first = handshake(sock, _client_context(ctx.target.params, context_roots), sni, deadline)
    details["handshake_ms"] = round((time.monotonic() - started) * 1000, 1)
    ctx.facts["tls_handshake_ms"] = details["handshake_ms"]
    prefix = f"connection to server at {_where(host, address)}, port {address.port} failed: "
    source = first
    if first.verify_error is not None and not ctx.facts.get("abandoned"):
        source = _fetch_chain(ctx, address, direct, sni, deadline)
        details["connections"] = connections = connections + 1
    if not source.ok:
        if first.verify_error is not None:
            source = Handshake(False, error=f"SSL error: certificate verify failed ({first.verify_error})")
        return _result(ctx, _handshake_failed(ctx, source, mode, direct, prefix, details), details)
    details.update(
        {
            "protocol": source.protocol,
            "cipher": source.cipher,
            "cipher_bits": source.bits,
            "alpn": source.alpn,
            "closed_with_close_notify": source.clean_close,
            "chain_length": len(source.chain),
        }
    )
    if direct and source.der and source.alpn != ALPN:
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
    ctx.facts["tls_version"] = source.protocol
    ctx.facts["tls_cipher"] = source.cipher
    cert: dict[str, Any] | None = None
    try:
        if source.peer:
            cert = stdlib_certificate(source.peer)
        elif source.der:
            cert = read_certificate(source.der)
    except (ValueError, KeyError) as exc:
        details["certificate_error"] = f"could not decode the certificate: {exc}"
    details["certificate"] = cert
    if (verifying or system_first) and first.ok:
        check = ChainCheck(True, served=len(first.chain))
    else:
        try:
            check = verify_chain(source.chain, load_roots(roots)) if cert else ChainCheck(False, "no certificate")
        except ValueError as exc:
            check = ChainCheck(False, f"could not decode the chain: {exc}", "unknown-ca")
        if first.verify_error is not None:
            check.ok = False
            check.error = first.verify_error
    verdict = _judge(ctx, mode, roots, check, cert, host, sni, details)
    if mode != "disable" and verdict.status is not Status.FAIL:
        client = inspect_client_certificate(ctx, details)
        if client is not None:
            verdict = client
        elif ctx.target.user and ctx.facts.get("client_cert_cn") not in (None, ctx.target.user):
            verdict.notes.append(
                f"the client certificate is for CN={ctx.facts['client_cert_cn']}, not the user "
                f"{ctx.target.user}: a server with clientcert=verify-full or cert authentication "
                "refuses it unless pg_ident.conf maps the names"
            )
    return _result(ctx, verdict, details)


def _fetch_chain(ctx: CheckContext, address: Address, direct: bool, sni: str | None, deadline: float) -> Handshake:
    """OpenSSL rejected the chain as libpq will: fetch it without verification, once, to say why."""
    try:
        sock = connect(address, max(0.05, deadline - time.monotonic()))
    except OSError as exc:
        return Handshake(False, error=str(exc))
    if not direct and negotiate(sock, deadline).kind != "S":
        _close(sock)
        return Handshake(False, error="the server did not accept TLS a second time")
    return handshake(sock, _client_context(ctx.target.params), sni, deadline)


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
        exact_next_step=verdict.exact,
    )


_VERSION_ALERTS = ("protocol version", "unsupported protocol", "no protocols available", "wrong version number")


def _handshake_failed(
    ctx: CheckContext, first: Handshake, mode: str, direct: bool, prefix: str, details: dict[str, Any]
) -> _Verdict:
    text = first.error or "TLS handshake failed"
    exact = False
    if first.timed_out:
        summary = (
            f"the server accepted the SSLRequest but the TLS handshake did not finish within {details['timeout_s']:g} s"
        )
        next_step = (
            "The server (or something in front of it) answers the SSLRequest and then stalls: a middlebox that "
            "holds TLS, or an overloaded server; check from another network, then the server's load"
        )
        exact = True
    elif direct:
        summary = (
            f"direct TLS (sslnegotiation=direct) with {details['address']} failed: {text}; the server does not "
            "take TLS straight away (PostgreSQL 17 or newer does)"
        )
        next_step = "Remove sslnegotiation=direct (the default, sslnegotiation=postgres, works with every server)"
        exact = True
    elif first.alert and any(word in first.alert for word in _VERSION_ALERTS):
        low, high = tls_versions(ctx.target.params)
        wanted = f"{low} or newer" if not high else f"only {low}" if low.lower() == high.lower() else f"{low} to {high}"
        summary = (
            f"the TLS handshake failed ({first.alert}): this client allows {wanted}, and the server offers none of "
            "those versions"
        )
        next_step = (
            f"Make the TLS versions overlap: lower ssl_min_protocol_version (now {low}) in the connection string, or "
            "set the server's ssl_min_protocol_version/ssl_max_protocol_version to include it"
        )
        details["client_tls_versions"] = wanted
        exact = True
    else:
        summary = f"the TLS handshake with {details['address']} failed: {text}"
        next_step = (
            "The server accepted the SSLRequest but not the handshake: check its ssl settings "
            "(ssl_min_protocol_version, certificate files) or a middlebox on the path"
        )
    failure = prefix + ("timeout expired" if first.timed_out else text)
    if mode in ("prefer", "allow") and not direct:
        summary += f"; with sslmode={mode} libpq then retries without TLS (plain text)"
        return _Verdict(Status.WARN, summary, next_step, failure, exact=exact)
    return _Verdict(Status.FAIL, summary, next_step, failure, exact=exact)


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
        if ctx.target.params.get("channel_binding") == "require":
            return _Verdict(
                Status.FAIL,
                "the server does not support TLS (it answered 'N' to the SSLRequest), and channel_binding=require "
                "needs TLS: SCRAM channel binding is bound to the TLS session",
                "Turn TLS on in the server (ssl = on with a certificate), or drop channel_binding=require for this "
                "server; a Neon string keeps both sslmode=require and channel_binding=require",
                "channel binding required, but SSL not in use",
                exact=True,
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
    if reply.kind == "timeout" and reply.data:
        return _Verdict(
            Status.FAIL,
            f"{where} began an error reply to the SSLRequest but did not finish it within {details['timeout_s']:g} s "
            "(it trickles its bytes)",
            "Something on that port answers far too slowly to be a healthy PostgreSQL server or proxy: check what "
            "listens there and its load",
            prefix + "timeout expired",
            exact=True,
        )
    if reply.kind == "timeout":
        tcp_ms = ctx.facts.get("tcp_connect_ms")
        accepted = f"accepted TCP in {tcp_ms:.0f} ms" if isinstance(tcp_ms, int | float) else "accepted TCP"
        return _Verdict(
            Status.FAIL,
            f"{where} {accepted} but did not answer the SSLRequest within {details['timeout_s']:g} s: not a "
            "firewall (those drop the connection itself), but a peer that is slow or stuck",
            "The host accepts connections but answers slowly: a server still starting (a cold start) or overloaded, "
            "or a proxy waiting for its backend; retry with a longer --timeout (and connect_timeout), and check the "
            "server's state and that this port is PostgreSQL's",
            prefix + "timeout expired",
            exact=True,
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
    check: ChainCheck,
    cert: dict[str, Any] | None,
    host: str,
    sni: str | None,
    details: dict[str, Any],
) -> _Verdict:
    chain_ok = check.ok
    name_ok = cert is not None and hostname_matches(cert, host)
    libpq_chain = roots.usable and mode not in ("disable", "allow")
    checks = "chain and host name" if mode == "verify-full" else "chain" if libpq_chain else "nothing"
    details["verification"] = {
        "against": roots.describe() if roots.usable else "the system's trusted roots (libpq itself checks nothing)",
        "chain": "ok" if chain_ok else "failed",
        "chain_error": check.error,
        "chain_problem": check.problem,
        "certificates_served": check.served,
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
    against_system = roots.system or not roots.usable
    if _neon(ctx) and not chain_ok and cert is not None and against_system and check.problem != "expired":
        if not _public_issuer(cert):
            return _intercepted(cert, host, mode, libpq_chain)
        check.problem = "outdated-roots"
    if libpq_chain and not chain_ok:
        problem = f"the server's certificate does not verify against {roots.describe()}: {check.error}"
        specific = _chain_problem(check, cert, roots)
        if specific is not None:
            problem += f" ({specific[0]})"
        if mode == "prefer":
            return _Verdict(
                Status.WARN,
                f"{problem}; {why_chain}, fails, and falls back to a connection without TLS",
                specific[1] if specific else "Point sslrootcert at the CA that signed the server's certificate, or "
                "remove the root certificate",
                VERIFY_FAILED_TEXT,
                exact=specific is not None,
            )
        return _Verdict(
            Status.FAIL,
            f"{problem}; {why_chain} and rejects it",
            specific[1] if specific else "Point sslrootcert at the CA that signed the server's certificate (for Neon: "
            "sslrootcert=system); a self-signed server needs its own certificate as the root",
            VERIFY_FAILED_TEXT,
            exact=specific is not None,
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
        summary += f"; sslmode={mode} does not check the certificate, but it verifies against {roots.describe()}"
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
            f"; sslmode={mode} accepts this certificate without checking it ({check.error}): the traffic is "
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
    exact = False
    if check.problem in ("expired", "not-yet-valid") and cert is not None:
        status = Status.WARN
        word = "expired" if check.problem == "expired" else "not yet valid"
        summary += f"; sslmode={mode} accepts the {word} certificate only because it checks nothing"
        next_step = _chain_problem(check, cert, roots)[1]  # type: ignore[index]
        exact = True
    elif cert is not None and cert["days_left"] < EXPIRY_WARN_DAYS and status is not Status.FAIL:
        status = Status.WARN
        summary += f"; the certificate expires in {_days(cert['days_left'])}"
        next_step = next_step or "Renew the server's certificate before it expires, and reload the server"
        exact = True
    return _Verdict(status, summary, next_step, failure, notes, exact=exact)


def _chain_problem(check: ChainCheck, cert: dict[str, Any] | None, roots: Roots) -> tuple[str, str] | None:
    """What the chain's own dates and shape say, and the step that follows from it; None when only the CA is unknown
    to the roots and nothing more specific is known."""
    if cert is None:
        return None
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    issuer = _short_name(cert, "issuer") or "its issuer"
    if check.problem == "expired":
        return (
            f"it expired on {cert['not_after'][:10]}, {_days(-cert['days_left'])} ago",
            f"Renew the server's certificate (ssl_cert_file) and reload the server; if it should still be valid, "
            f"check this machine's clock (it says {now})",
        )
    if check.problem == "not-yet-valid":
        return (
            f"it is valid only from {cert['not_before'][:16].replace('T', ' ')} UTC",
            f"Check the clock on this machine (it says {now}) and on the server that made the certificate; a "
            "certificate dated in the future must be reissued",
        )
    if check.problem == "issuer-expired":
        return (
            "an intermediate CA certificate the server sends has expired",
            "Replace the intermediate in the server's certificate file (ssl_cert_file) with the CA's current one, "
            "and reload the server",
        )
    if check.problem == "incomplete-chain":
        return (
            f"the server sends only its own certificate, issued by '{issuer}', and not the intermediate that "
            "links it to a trusted root",
            f"Serve the full chain: put the server certificate followed by its intermediate CA certificate(s) "
            f"('{issuer}') in the server's ssl_cert_file and reload; or, if '{issuer}' is itself your private root, "
            "point sslrootcert at it",
        )
    if check.problem == "self-signed":
        return (
            "the certificate signed itself",
            "Put the server's own certificate in sslrootcert (it is its own root), or give the server a certificate "
            "signed by a CA you trust",
        )
    if check.problem == "outdated-roots":
        return (
            f"it was issued by '{_short_name(cert, 'issuer')}', a public CA this machine's root store does not know",
            "Update this machine's CA bundle (`apt-get install --reinstall ca-certificates`, "
            "`update-ca-certificates`; in a container, install ca-certificates), then keep sslrootcert=system",
        )
    if check.problem == "no-roots":
        return (
            "no root certificates were found on this machine",
            "Install the OS CA bundle (ca-certificates) or point sslrootcert at a PEM file with the CA",
        )
    if check.problem == "unknown-ca":
        return (
            f"it was issued by '{issuer}', which is not among the roots",
            f"Point sslrootcert at the CA certificate of '{issuer}' (the one that signed the server's certificate)",
        )
    return None


PUBLIC_CAS = ("Let's Encrypt", "ISRG", "Amazon", "DigiCert", "GlobalSign", "Google Trust Services", "Sectigo")
"""Issuers of the public certificates Neon and the other big providers serve: not an interception when the
local root store merely lacks them."""


def _public_issuer(cert: dict[str, Any]) -> bool:
    issuer = cert.get("issuer") or ""
    return any(name.lower() in issuer.lower() for name in PUBLIC_CAS)


def _intercepted(cert: dict[str, Any], host: str, mode: str, libpq_chain: bool) -> _Verdict:
    issuer = _short_name(cert, "issuer") or "an unknown issuer"
    summary = (
        f"the certificate for {host} was issued by '{issuer}', which no public CA vouches for, while Neon's "
        "certificates chain to a public root: something between you and Neon intercepts TLS (a corporate proxy, "
        "antivirus or VPN that inspects traffic)"
    )
    step = (
        "Something intercepts TLS: ask the network admin to exempt *.neon.tech from TLS inspection, or connect from "
        "another network; trust the proxy's CA (sslrootcert) only if you trust whoever runs it"
    )
    if libpq_chain:
        return _Verdict(Status.FAIL, summary + f"; sslmode={mode} rejects it", step, VERIFY_FAILED_TEXT, exact=True)
    return _Verdict(
        Status.WARN,
        summary + f"; sslmode={mode} checks nothing, so the proxy can read the password and every query",
        step,
        VERIFY_FAILED_TEXT,
        exact=True,
    )


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


def _short_name(cert: dict[str, Any], which: str) -> str | None:
    """A name as a person would say it: its CN, else its O or OU, else the whole name."""
    full = cert.get(which) or ""
    return cert.get(f"{which}_cn") or _attribute(full, "O") or _attribute(full, "OU") or full or None


def _attribute(name: str, key: str) -> str | None:
    return next((part.split("=", 1)[1] for part in name.split(", ") if part.startswith(key + "=")), None)


def _days(count: int) -> str:
    return f"{count} day{'' if count == 1 else 's'}"
