"""What the tls line says, word for word, about a certificate under each sslmode and root (a scripted TLS peer).

The peer's certificate comes from the test CA for localhost, the loopback addresses and Neon's wildcards; the
system's roots do not know that CA, so it stands for a private CA (or, on a Neon host, an intercepting proxy).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import trustme
from peers import NeonPresets
from test_probe_tls import chain

NEON_HOST = "ep-cool-darkness-123456.us-east-2.aws.neon.tech"
OTHER_HOST = "db.example.invalid"
NAMES = "localhost, 127.0.0.1, ::1, *.us-east-2.aws.neon.tech, *.c-2.us-east-2.aws.neon.tech, *.neon.invalid"
MITM = "a man-in-the-middle would go unnoticed"


@pytest.fixture(autouse=True)
def no_default_root_cert(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def peer(pg_protocol_peer: Any) -> Any:
    return pg_protocol_peer(NeonPresets.accepts)


@pytest.fixture
def other_ca(tmp_path: Path) -> str:
    path = tmp_path / "other-ca.pem"
    trustme.CA(organization_name="Other CA").cert_pem.write_to_path(str(path))
    return str(path)


def described(result: Any) -> str:
    cert, details = result.details["certificate"], result.details
    return f"certificate for localhost from neondoctor test CA, {cert['days_left']} days left; {details['protocol']}"


def said(result: Any) -> tuple[str, str, str | None, bool, list[str] | None]:
    return str(result.status), result.summary, result.next_step, result.exact_next_step, result.details.get("notes")


def test_verify_full_that_holds(peer: Any) -> None:
    result, _ = chain(peer.url(host="localhost", sslmode="verify-full", sslrootcert=str(peer.ca_path)))
    assert said(result) == (
        "pass",
        f"TLS works: {described(result)}; verified against sslrootcert {peer.ca_path} and the host name matches",
        None, False, None,
    )
    assert result.matches == []
    assert result.details["verification"] == {
        "against": f"sslrootcert {peer.ca_path}", "chain": "ok", "chain_error": None, "chain_problem": None,
        "certificates_served": 1, "hostname": "match", "libpq_checks": "chain and host name",
    }


def test_verify_full_with_a_host_the_certificate_does_not_list(peer: Any) -> None:
    result, _ = chain(peer.url(host=OTHER_HOST, hostaddr="127.0.0.1", sslmode="verify-full",
                               sslrootcert=str(peer.ca_path)))
    assert said(result) == (
        "fail",
        f"the certificate is for {NAMES}, not {OTHER_HOST}: sslmode=verify-full checks the host name and rejects it",
        "Connect with a host name the certificate lists, or fix the server's certificate (sslmode=verify-ca skips "
        "the name check)",
        False, None,
    )
    assert result.matches[0]["id"] == "tls-hostname-mismatch"
    assert result.matches[0]["excerpt"] == (
        f'server certificate for "localhost" (and 5 other names) does not match host name "{OTHER_HOST}"'
    )
    assert result.details["verification"]["hostname"] == "mismatch"


@pytest.mark.parametrize(
    ("mode", "host", "note", "checks"),
    [
        ("verify-ca", OTHER_HOST, f"the certificate does not list {OTHER_HOST}: sslmode=verify-full would reject it",
         "chain"),
        ("verify-ca", "localhost", "the host name matches too: sslmode=verify-full would also pass", "chain"),
        ("require", "localhost", "the host name matches too: sslmode=verify-full would also pass", "chain"),
        ("prefer", OTHER_HOST, f"the certificate does not list {OTHER_HOST}: sslmode=verify-full would reject it",
         "chain"),
    ],
)
def test_a_chain_checked_against_a_root_file_notes_what_verify_full_would_say(
    peer: Any, mode: str, host: str, note: str, checks: str
) -> None:
    result, _ = chain(peer.url(host=host, hostaddr="127.0.0.1", sslmode=mode, sslrootcert=str(peer.ca_path)))
    assert said(result) == (
        "pass", f"TLS works: {described(result)}; verified against sslrootcert {peer.ca_path}", None, False, [note]
    )
    assert result.details["verification"]["libpq_checks"] == checks


def test_the_default_root_file_is_named_as_libpqs_default(peer: Any, tmp_path: Path) -> None:
    default = tmp_path / ".postgresql" / "root.crt"
    default.parent.mkdir()
    default.write_bytes(Path(peer.ca_path).read_bytes())
    result, _ = chain(peer.url(host="localhost", sslmode="verify-full"))
    assert result.summary == (
        f"TLS works: {described(result)}; verified against {default} (libpq's default) and the host name matches"
    )


@pytest.mark.parametrize("mode", ["require", "prefer"])
def test_an_unchecked_private_ca_warns_of_a_man_in_the_middle(peer: Any, mode: str) -> None:
    result, _ = chain(peer.url(host="localhost", sslmode=mode))
    assert said(result) == (
        "warn",
        f"TLS works: {described(result)}; sslmode={mode} accepts this certificate without checking it (unable to get "
        f"local issuer certificate): the traffic is encrypted, but {MITM}",
        "Get the CA certificate that signed the server's certificate and use "
        "sslmode=verify-full&sslrootcert=/path/to/ca.pem",
        False, None,
    )
    assert result.details["verification"] == {
        "against": "the system's trusted roots (libpq itself checks nothing)", "chain": "failed",
        "chain_error": "unable to get local issuer certificate", "chain_problem": "incomplete-chain",
        "certificates_served": 1, "hostname": "match", "libpq_checks": "nothing",
    }


def test_sslmode_allow_warns_that_plain_text_comes_first(peer: Any) -> None:
    result, _ = chain(peer.url(host="localhost", sslmode="allow"))
    status, summary, step, _, _ = said(result)
    assert (status, step) == ("warn", "Get the CA certificate that signed the server's certificate and use "
                                      "sslmode=verify-full&sslrootcert=/path/to/ca.pem")
    assert summary.endswith(
        f"the traffic is encrypted, but {MITM}; but sslmode=allow first tries without TLS, so libpq uses plain text "
        "whenever the server allows it"
    )
    trusted, _ = chain(peer.url(host="localhost", sslmode="allow", sslrootcert=str(peer.ca_path)))
    assert said(trusted) == (
        "warn",
        f"TLS works: {described(trusted)}; sslmode=allow does not check the certificate, but it verifies against "
        f"sslrootcert {peer.ca_path}; but sslmode=allow first tries without TLS, so libpq uses plain text whenever "
        "the server allows it",
        "Use sslmode=require (or verify-full)",
        False,
        ["sslmode=verify-full&sslrootcert=system (libpq >= 16) would also protect against a man-in-the-middle"],
    )


def test_a_trusted_certificate_for_another_name_under_allow(peer: Any) -> None:
    result, _ = chain(peer.url(host=OTHER_HOST, hostaddr="127.0.0.1", sslmode="allow", sslrootcert=str(peer.ca_path)))
    assert said(result) == (
        "warn",
        f"TLS works: {described(result)}; the certificate is trusted but does not list {OTHER_HOST}: sslmode=allow "
        "accepts it, verify-full would not; but sslmode=allow first tries without TLS, so libpq uses plain text "
        "whenever the server allows it",
        "Use a host name the certificate lists, or fix the certificate before moving to verify-full",
        False, None,
    )
    assert result.matches[0]["excerpt"] == (
        f'server certificate for "localhost" (and 5 other names) does not match host name "{OTHER_HOST}"'
    )


@pytest.mark.parametrize(
    ("mode", "status", "tail"),
    [
        ("verify-full", "fail", "sslmode=verify-full checks the certificate chain and rejects it"),
        ("verify-ca", "fail", "sslmode=verify-ca checks the certificate chain and rejects it"),
        ("require", "fail", "sslmode=require checks the chain like verify-ca because a root certificate is present "
                            "({root}) and rejects it"),
        ("prefer", "warn", "sslmode=prefer checks the chain like verify-ca because a root certificate is present "
                           "({root}), fails, and falls back to a connection without TLS"),
    ],
)
def test_a_root_file_that_did_not_sign_the_certificate(
    peer: Any, other_ca: str, mode: str, status: str, tail: str
) -> None:
    result, _ = chain(peer.url(host="localhost", sslmode=mode, sslrootcert=other_ca))
    assert said(result) == (
        status,
        f"the server's certificate does not verify against sslrootcert {other_ca}: unable to get local issuer "
        "certificate (the server sends only its own certificate, issued by 'neondoctor test CA', and not the "
        f"intermediate that links it to a trusted root); {tail.format(root=other_ca)}",
        "Serve the full chain: put the server certificate followed by its intermediate CA certificate(s) ('neondoctor "
        "test CA') in the server's ssl_cert_file and reload; or, if 'neondoctor test CA' is itself your private root, "
        "point sslrootcert at it",
        True, None,
    )
    assert [(m["id"], m["excerpt"]) for m in result.matches[:1]] == [
        ("tls-cert-verify-failed", "SSL error: certificate verify failed")
    ]
    assert result.details["connections"] == 2


# --------------------------------------------------------------------------- Neon


INTERCEPTED = (
    f"the certificate for {NEON_HOST} was issued by 'neondoctor test CA', which no public CA vouches for, while "
    "Neon's certificates chain to a public root: something between you and Neon intercepts TLS (a corporate proxy, "
    "antivirus or VPN that inspects traffic)"
)
INTERCEPTED_STEP = (
    "Something intercepts TLS: ask the network admin to exempt *.neon.tech from TLS inspection, or connect from "
    "another network; trust the proxy's CA (sslrootcert) only if you trust whoever runs it"
)


@pytest.mark.parametrize("mode", ["require", "prefer"])
def test_neon_behind_an_intercepting_proxy_without_verification(peer: Any, mode: str) -> None:
    result, _ = chain(peer.url(host=NEON_HOST, hostaddr="127.0.0.1", sslmode=mode))
    assert said(result) == (
        "warn",
        INTERCEPTED + f"; sslmode={mode} checks nothing, so the proxy can read the password and every query",
        INTERCEPTED_STEP, True, None,
    )
    assert result.matches[0]["excerpt"] == "SSL error: certificate verify failed"


@pytest.mark.parametrize("mode", ["require", "prefer"])
def test_neon_with_a_publicly_trusted_chain_is_verified_in_the_one_handshake(
    peer: Any, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(peer.ca_path))  # the test CA stands for a public root here
    result, _ = chain(peer.url(host=NEON_HOST, hostaddr="127.0.0.1", sslmode=mode))
    assert said(result) == (
        "pass",
        f"TLS works: {described(result)}; sslmode={mode} does not check the certificate, but it verifies against "
        "the system's trusted roots",
        None, False,
        ["sslmode=verify-full&sslrootcert=system (libpq >= 16) would also protect against a man-in-the-middle"],
    )
    assert result.details["verified_in_handshake"] == "system roots" and result.details["connections"] == 1
    assert result.details["certificate"]["issuer"].startswith("O=neondoctor test CA, ")


def test_off_neon_require_verifies_nothing_in_the_handshake(peer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A private CA is common off Neon: a verifying handshake would end in an alert the server logs as an error."""
    monkeypatch.setenv("SSL_CERT_FILE", str(peer.ca_path))
    result, _ = chain(peer.url(host="localhost", sslmode="require"))
    assert str(result.status) == "pass" and result.details["verified_in_handshake"] is None
    assert result.summary.endswith("does not check the certificate, but it verifies against the system's trusted roots")


def test_neon_behind_an_intercepting_proxy_with_verify_full(peer: Any) -> None:
    from psycopg import pq

    if pq.version() < 160000:
        pytest.skip("libpq < 16 reads sslrootcert=system as a file name")
    result, _ = chain(peer.url(host=NEON_HOST, hostaddr="127.0.0.1", sslmode="verify-full", sslrootcert="system"))
    assert said(result) == ("fail", INTERCEPTED + "; sslmode=verify-full rejects it", INTERCEPTED_STEP, True, None)
    assert result.details["verification"]["against"] == "the system's trusted roots (sslrootcert=system)"


def test_neon_with_its_own_root_file_is_not_called_intercepted(peer: Any) -> None:
    result, _ = chain(peer.url(host=NEON_HOST, hostaddr="127.0.0.1", sslmode="verify-full",
                               sslrootcert=str(peer.ca_path)))
    assert str(result.status) == "pass"
    assert result.summary.endswith(f"verified against sslrootcert {peer.ca_path} and the host name matches")


def test_neon_with_sslmode_disable_is_refused(peer: Any) -> None:
    result, _ = chain(peer.url(host=NEON_HOST, hostaddr="127.0.0.1", sslmode="disable"))
    assert said(result) == (
        "fail",
        "sslmode=disable: Neon refuses connections without TLS (connection is insecure)",
        "Use sslmode=require, or better sslmode=verify-full&sslrootcert=system (libpq >= 16)",
        False, None,
    )
    assert result.matches[0]["excerpt"] == "connection is insecure (try using `sslmode=require`)"


def test_sslmode_disable_elsewhere_notes_plain_text(peer: Any) -> None:
    result, _ = chain(peer.url(host="localhost", sslmode="disable"))
    assert said(result) == (
        "pass",
        f"the server offers TLS ({described(result)}), but sslmode=disable will not use it",
        None, False, ["with sslmode=disable everything, password authentication included, travels in plain text"],
    )


@pytest.mark.parametrize(
    ("host", "params", "why"),
    [
        (NEON_HOST, {"hostaddr": "127.0.0.1", "sslsni": "0"}, "sslsni=0"),
    ],
)
def test_neon_without_sni(peer: Any, host: str, params: dict[str, str], why: str) -> None:
    result, _ = chain(peer.url(host=host, sslmode="require", **params))
    assert said(result) == (
        "fail",
        f"no TLS SNI is sent ({why}), so Neon's proxy cannot tell which endpoint you want",
        "Connect with the Neon host name and without sslsni=0, or add options=endpoint%3D<endpoint-id>",
        False, None,
    )
    assert result.matches[0]["excerpt"] == "Endpoint ID is not specified"


# ------------------------------------------------------------------ what is wrong with the chain (real servers)


CLOCK = r"\d{4}-\d\d-\d\d \d\d:\d\d UTC"


def chain_case(pg_factory: Any, pg: Any, mode: str, sslmode: str) -> tuple[Any, dict[str, Any]]:
    cluster = pg_factory(ssl=mode)
    root = {"sslrootcert": str(cluster.ca_path or pg.ca_path)} if sslmode == "verify-full" else {}
    result, _ = chain(cluster.url(host="localhost", sslmode=sslmode, **root))
    return result, result.details["certificate"]


@pytest.mark.parametrize(
    ("mode", "error", "why", "step"),
    [
        ("expired", "certificate has expired", "it expired on {not_after}, 1 day ago",
         r"Renew the server's certificate \(ssl_cert_file\) and reload the server; if it should still be valid, "
         rf"check this machine's clock \(it says {CLOCK}\)"),
        ("notyet", "certificate is not yet valid", "it is valid only from {not_before} UTC",
         rf"Check the clock on this machine \(it says {CLOCK}\) and on the server that made the certificate; a "
         r"certificate dated in the future must be reissued"),
        ("nochain", "unable to get local issuer certificate",
         "the server sends only its own certificate, issued by 'trustme v1.2.1', and not the intermediate that links "
         "it to a trusted root",
         r"Serve the full chain: put the server certificate followed by its intermediate CA certificate\(s\) "
         r"\('trustme v1\.2\.1'\) in the server's ssl_cert_file and reload; or, if 'trustme v1\.2\.1' is itself your "
         r"private root, point sslrootcert at it"),
        ("selfsigned", "self-signed certificate", "the certificate signed itself",
         r"Put the server's own certificate in sslrootcert \(it is its own root\), or give the server a certificate "
         r"signed by a CA you trust"),
    ],
)
def test_verify_full_names_what_is_wrong_with_the_chain(
    pg_factory: Any, pg: Any, mode: str, error: str, why: str, step: str
) -> None:
    import re

    result, cert = chain_case(pg_factory, pg, mode, "verify-full")
    root = result.details["verification"]["against"]
    why = why.format(not_after=cert["not_after"][:10], not_before=cert["not_before"][:16].replace("T", " "))
    assert (str(result.status), result.summary, result.exact_next_step) == (
        "fail", f"the server's certificate does not verify against {root}: {error} ({why}); sslmode=verify-full "
        "checks the certificate chain and rejects it", True,
    )
    assert re.fullmatch(step, result.next_step or ""), result.next_step
    assert result.details["verification"]["chain_error"] == error


@pytest.mark.parametrize(
    ("mode", "error", "word"),
    [("expired", "certificate has expired", "expired"), ("notyet", "certificate is not yet valid", "not yet valid")],
)
def test_require_accepts_a_certificate_out_of_its_dates_only_because_it_checks_nothing(
    pg_factory: Any, pg: Any, mode: str, error: str, word: str
) -> None:
    result, cert = chain_case(pg_factory, pg, mode, "require")
    left = cert["days_left"]
    validity = "expired 1 day ago" if left < 0 else f"{left} days left"
    assert (str(result.status), result.summary, result.exact_next_step) == (
        "warn",
        f"TLS works: certificate for localhost from neondoctor test CA, {validity}; {result.details['protocol']}; "
        f"sslmode=require accepts this certificate without checking it ({error}): the traffic is encrypted, but "
        f"{MITM}; sslmode=require accepts the {word} certificate only because it checks nothing",
        True,
    )


def test_a_self_signed_certificate_soon_to_expire_under_require(pg_factory: Any, pg: Any) -> None:
    result, cert = chain_case(pg_factory, pg, "selfsigned", "require")
    assert result.summary.startswith(f"TLS works: certificate for localhost from localhost, {cert['days_left']} days "
                                     "left;")
    assert cert["self_signed"] is True and cert["issuer"] == cert["subject"] == "CN=localhost"


# --------------------------------------------------------------------------- the details a healthy handshake leaves


def test_the_details_of_a_verified_handshake(peer: Any) -> None:
    result, ctx = chain(peer.url(host="localhost", sslmode="verify-full", sslrootcert=str(peer.ca_path)))
    details = dict(result.details)
    certificate, verification = details.pop("certificate"), details.pop("verification")
    assert certificate["san"][:3] == ["DNS:localhost", "IP:127.0.0.1", "IP:::1"] and verification["chain"] == "ok"
    handshake_ms, timeout_s = details.pop("handshake_ms"), details.pop("timeout_s")
    assert details.pop("closed_with_close_notify") in (True, False)  # the peer may hang up first
    assert 0 < handshake_ms < 1000 and 0 < timeout_s <= 5
    assert details == {
        "address": f"127.0.0.1:{peer.port}", "host": "localhost", "sni": "localhost", "sslmode": "verify-full",
        "reused_tcp_connection": True, "negotiation": "postgres", "connections": 1, "server_answer": "S",
        "verified_in_handshake": "sslrootcert",
        "tcp_connect_ms": ctx.facts["tcp_connect_ms"], "protocol": ctx.facts["tls_version"],
        "cipher": ctx.facts["tls_cipher"], "cipher_bits": details["cipher_bits"], "alpn": "postgresql",
        "chain_length": 1,
    }
    assert details["cipher_bits"] >= 128 and ctx.facts["tls_supported"] is True
    assert ctx.facts["tls_handshake_ms"] == handshake_ms
    assert peer.last.sni == "localhost" and peer.last.alpn == "postgresql"


def test_no_sni_to_an_ip_or_with_sslsni_0(peer: Any) -> None:
    by_ip, _ = chain(peer.url(host="127.0.0.1", sslmode="require"))
    assert by_ip.details["sni"] is None and by_ip.details["host"] == "127.0.0.1"
    assert by_ip.details["address"] == f"127.0.0.1:{peer.port}"
    assert peer.last.sni is None
    off, _ = chain(peer.url(host="localhost", sslmode="require", sslsni="0"))
    assert off.details["sni"] is None and off.details["host"] == "localhost"
    assert peer.last.sni is None


def test_a_server_gone_between_tcp_and_tls(closed_port: Any) -> None:
    from neondoctor.probes import tls
    from neondoctor.probes.base import Address, CheckContext, CheckOptions
    from neondoctor.target import parse_target

    host, port = closed_port
    ctx = CheckContext(parse_target(f"postgresql://a:pw@{host}:{port}/app?sslmode=require"), CheckOptions())
    ctx.addresses = [Address("ipv4", "127.0.0.1", port)]
    result = tls.run(ctx)
    assert (str(result.status), result.summary, result.next_step) == (
        "fail", f"cannot reconnect to 127.0.0.1:{port}: Connection refused",
        "The server stopped answering between the tcp and tls steps: run the check again",
    )
    assert result.matches[0]["excerpt"].startswith(
        f'connection to server at "127.0.0.1", port {port} failed: Connection refused'
    )
    assert result.details["connections"] == 1 and result.details["reused_tcp_connection"] is False
    stray = socket.socket()
    ctx = CheckContext(parse_target(f"postgresql://a:pw@{host}:{port}/app?sslmode=require"), CheckOptions())
    ctx.addresses = [Address("ipv4", "127.0.0.1", port)]
    ctx.facts["tcp_socket"] = stray
    assert tls.run(ctx).summary.startswith("cannot reconnect") and stray.fileno() == -1


def test_no_address_means_no_tls() -> None:
    from neondoctor.probes import tls
    from neondoctor.probes.base import CheckContext, CheckOptions
    from neondoctor.target import parse_target

    result = tls.run(CheckContext(parse_target("postgresql://a@/app"), CheckOptions()))
    assert (str(result.status), result.summary) == ("skip", "no TCP address: TLS is not used over a Unix socket")


# --------------------------------------------------------------------------- client certificate, root files


def client_files(directory: Path, cn: str, mode: int = 0o600) -> tuple[str, str]:
    from pgcluster import harness_ca

    leaf = harness_ca().ca.issue_cert(cn, common_name=cn)
    cert, key = directory / f"{cn}.crt", directory / f"{cn}.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    key.chmod(mode)
    return str(cert), str(key)


def test_a_client_key_others_can_read_is_refused_like_libpq(peer: Any, tmp_path: Path) -> None:
    cert, key = client_files(tmp_path, "alice", 0o644)
    result, _ = chain(peer.url(host="localhost", sslmode="require", sslcert=cert, sslkey=key))
    assert said(result)[:4] == (
        "fail", f"libpq refuses the client key {key}: others can read it (mode 644, owned by you)",
        f"chmod 0600 {key} (libpq sends no key that others can read: 0600 if you own it, 0640 if root does)", True,
    )
    assert result.matches[0]["excerpt"] == (
        f'private key file "{key}" has group or world access; file must have permissions u=rw (0600) or less if owned '
        "by the current user, or permissions u=rw,g=r (0640) or less if owned by root"
    )
    info = result.details["client_certificate"]
    assert info == {"path": cert, "key": key, "subject": info["subject"], "cn": "alice",
                    "days_left": info["days_left"], "key_mode": "644, owned by you"}
    assert info["subject"].startswith("O=trustme") and info["subject"].endswith(", CN=alice") and info["days_left"] > 0


def test_a_client_certificate_for_another_user_is_noted(peer: Any, tmp_path: Path) -> None:
    cert, key = client_files(tmp_path, "bob")
    result, ctx = chain(peer.url(host="localhost", sslmode="require", sslrootcert=str(peer.ca_path), sslcert=cert,
                                 sslkey=key))
    assert str(result.status) == "pass"
    assert result.details["notes"][-1] == (
        "the client certificate is for CN=bob, not the user alice: a server with clientcert=verify-full or cert "
        "authentication refuses it unless pg_ident.conf maps the names"
    )
    assert ctx.facts["client_cert_cn"] == "bob" and result.details["client_certificate"]["cn"] == "bob"
    own, _ = chain(peer.url(host="localhost", sslmode="require", sslrootcert=str(peer.ca_path),
                            **dict(zip(("sslcert", "sslkey"), client_files(tmp_path, "alice"), strict=True))))
    assert own.details["notes"] == ["the host name matches too: sslmode=verify-full would also pass"]


def test_an_unreadable_client_certificate_is_shown_not_fatal(peer: Any, tmp_path: Path) -> None:
    junk = tmp_path / "client.crt"
    junk.write_text("not a certificate")
    result, _ = chain(peer.url(host="localhost", sslmode="require", sslrootcert=str(peer.ca_path), sslcert=str(junk)))
    assert str(result.status) == "pass"
    info = result.details["client_certificate"]
    assert info["path"] == str(junk) and info["key"] is None and "error" in info and "cn" not in info


def test_a_root_file_libpq_cannot_read(peer: Any, tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    result, _ = chain(peer.url(host="localhost", sslmode="require", sslrootcert=str(junk)))
    error = result.details["verification"]["root_error"]
    assert said(result)[:4] == (
        "fail", f"libpq cannot read the root certificate file {junk}: {error}",
        "Point sslrootcert at a PEM file with the CA certificate(s)", False,
    )
    assert result.matches[0]["excerpt"] == f'could not read root certificate file "{junk}": {error}'


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full"])
def test_a_verifying_mode_without_a_root_file(peer: Any, tmp_path: Path, mode: str) -> None:
    missing = tmp_path / "nope.pem"
    result, _ = chain(peer.url(host="localhost", sslmode=mode, sslrootcert=str(missing)))
    assert said(result)[:4] == (
        "fail", f"sslmode={mode} needs a root certificate, and {missing} does not exist",
        "Add sslrootcert=system (libpq >= 16, for a public CA such as Neon's) or sslrootcert=/path/to/ca.pem", False,
    )
    assert result.matches[0]["excerpt"] == (
        f'root certificate file "{missing}" does not exist\nEither provide the file, use the system\'s trusted roots '
        "with sslrootcert=system, or change sslmode to disable server certificate verification."
    )


def test_pgsslrootcert_names_the_root_file(peer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGSSLROOTCERT", str(peer.ca_path))
    result, _ = chain(peer.url(host="localhost", sslmode="verify-full"))
    assert str(result.status) == "pass"
    assert result.details["verification"]["against"] == f"sslrootcert {peer.ca_path}"
    given, _ = chain(peer.url(host="localhost", sslmode="verify-full", sslrootcert="/nonexistent/ca.pem"))
    assert given.summary == "sslmode=verify-full needs a root certificate, and /nonexistent/ca.pem does not exist"


def test_pgsslrootcert_system_uses_the_systems_roots(peer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from psycopg import pq

    if pq.version() < 160000:
        pytest.skip("libpq < 16 reads sslrootcert=system as a file name")
    monkeypatch.setenv("PGSSLROOTCERT", "system")
    result, _ = chain(peer.url(host=NEON_HOST, hostaddr="127.0.0.1", sslmode="verify-full"))
    assert result.summary == INTERCEPTED + "; sslmode=verify-full rejects it"
    assert result.details["verification"]["against"] == "the system's trusted roots (sslrootcert=system)"
    weak, _ = chain(peer.url(host=NEON_HOST, hostaddr="127.0.0.1", sslmode="require"))
    assert said(weak)[:3] == (
        "fail", "libpq refuses sslrootcert=system with sslmode=require",
        "Use sslmode=verify-full with sslrootcert=system",
    )
    assert weak.matches[0]["excerpt"] == (
        'weak sslmode "require" may not be used with sslrootcert=system (use "verify-full")'
    )
