"""Real PostgreSQL servers for tests and benches: TLS on the fly, loopback only.

initdb runs once per process; each cluster starts from a copy of that template, in a temp dir
under :func:`scratch_root` (/dev/shm when roomy, else /tmp). As root, initdb and the server run as
the ``postgres`` OS user (``runuser -u postgres --``) in a directory that user owns; as any other
user they run directly. Every cluster is seeded like the ``pg`` fixture (roles ``alice`` and
``bob``, database ``app``) unless ``seed_app=False``.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import functools
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import EllipsisType
from typing import Any
from urllib.parse import quote, urlencode

ALICE_PASSWORD = "s3cr@t/pw:#?"
BOB_PASSWORD = "bobpw123"
SUPERUSER_PASSWORD = "sup3r-Secret!pw"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WRONG_NAME = "db.wrong.invalid"
SSL_MODES = ("ca", "selfsigned", "wrongname", "expired", "notyet", "nochain")
MISSING_BINARIES = "PostgreSQL server binaries not found; .ci/run must install them"
LOCAL_ADMIN_HBA = "local all all trust"
DEFAULT_HBA = (
    "host all all 127.0.0.1/32 scram-sha-256",
    "host all all ::1/128 scram-sha-256",
)
APP_SEED_SQL = (
    f"CREATE ROLE alice LOGIN PASSWORD '{ALICE_PASSWORD}'",
    f"CREATE ROLE bob LOGIN PASSWORD '{BOB_PASSWORD}'",
    "CREATE DATABASE app OWNER alice",
)
APP_TABLES_SQL = """
SET ROLE alice;
CREATE TABLE public.users (id bigserial PRIMARY KEY, email text NOT NULL);
CREATE TABLE public.orders (id bigserial PRIMARY KEY, user_id bigint REFERENCES public.users (id), total numeric);
CREATE SCHEMA billing;
CREATE TABLE billing.invoices (id bigserial PRIMARY KEY, order_id bigint, amount numeric);
CREATE TABLE public."Accounts" (id bigserial PRIMARY KEY, name text);
GRANT USAGE ON SCHEMA billing TO bob;
GRANT SELECT ON public.users, billing.invoices, public."Accounts" TO bob;
REVOKE ALL ON public.orders FROM bob;
RESET ROLE;
"""
SERVER_LOG = "server.log"
BINDIR_ENV = "NEONDOCTOR_PG_BINDIR"
EXTRA_BINDIRS_ENV = "NEONDOCTOR_PG_EXTRA_BINDIRS"
EXTRA_INSTALL_ROOTS = ("/opt/neondoctor-pg", "~/.cache/neondoctor-pg")
START_TIMEOUT = 30
_STOP_TIMEOUT = 15


class PgBinariesMissing(RuntimeError):
    pass


class PgStartError(RuntimeError):
    pass


def _has_initdb(bindir: Path) -> bool:
    return all((bindir / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres"))


def _version_key(path: str) -> tuple[int, ...]:
    match = re.search(r"/postgresql/([\d.]+)/bin", path)
    return tuple(int(part) for part in match.group(1).split(".") if part) if match else (0,)


@functools.cache
def find_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres.

    ``NEONDOCTOR_PG_BINDIR`` if set (and nothing else); else PATH, ``pg_config --bindir``, then
    ``/usr/lib/postgresql/*/bin`` (highest version).
    """
    forced = os.environ.get(BINDIR_ENV)
    if forced:
        return Path(forced) if _has_initdb(Path(forced)) else None
    found = shutil.which("initdb")
    if found:
        bindir = Path(found).resolve().parent
        if _has_initdb(bindir):
            return bindir
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=True)
            bindir = Path(out.stdout.strip())
            if _has_initdb(bindir):
                return bindir
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True):
        if _has_initdb(Path(candidate)):
            return Path(candidate)
    return None


def server_major(bindir: Path) -> int:
    """The major version of the server in ``bindir`` (``postgres --version``), 0 when it cannot tell."""
    return _server_major(str(bindir))


@functools.cache
def _server_major(bindir: str) -> int:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run([str(Path(bindir) / "postgres"), "--version"], capture_output=True, text=True, timeout=10)
        match = re.search(r"PostgreSQL\)?\s+(\d+)", out.stdout)
        if match:
            return int(match.group(1))
    return 0


@functools.cache
def find_bindirs() -> tuple[Path, ...]:
    """Every server the real-database tests run against, one per major version, the OS's first.

    The first is :func:`find_bindir`; then ``NEONDOCTOR_PG_EXTRA_BINDIRS`` (``:``-separated) if set
    (only that when ``NEONDOCTOR_PG_BINDIR`` forces the first), else every ``*/bin`` under
    /opt/neondoctor-pg and ~/.cache/neondoctor-pg (where ``.ci/install-postgres-npm`` puts the newest).
    """
    first = find_bindir()
    if first is None:
        return ()
    found = [first]
    extra = os.environ.get(EXTRA_BINDIRS_ENV)
    if extra is None and os.environ.get(BINDIR_ENV):
        extra = ""
    if extra is not None:
        candidates = [Path(part) for part in extra.split(":") if part]
    else:
        candidates = [
            Path(path)
            for root in EXTRA_INSTALL_ROOTS
            for path in sorted(glob.glob(os.path.join(os.path.expanduser(root), "*", "bin")))
        ]
    majors = {server_major(bindir) for bindir in found}
    for bindir in candidates:
        major = server_major(bindir) if _has_initdb(bindir) else 0
        if major and major not in majors:
            majors.add(major)
            found.append(bindir)
    return tuple(found)


def require_bindir() -> Path:
    bindir = find_bindir()
    if bindir is None:
        raise PgBinariesMissing(MISSING_BINARIES)
    return bindir


def on_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@functools.cache
def ipv6_loopback_works() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def free_port(*, ipv6: bool | None = None) -> int:
    """A TCP port free on 127.0.0.1 (and on ::1 when IPv6 is used) right now."""
    use_v6 = ipv6_loopback_works() if ipv6 is None else ipv6
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as v4:
            v4.bind(("127.0.0.1", 0))
            port = v4.getsockname()[1]
            if not use_v6:
                return port
            try:
                with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as v6:
                    v6.bind(("::1", port))
            except OSError:
                continue
            return port
    raise PgStartError("no free loopback port found")


class _OsUser:
    """Runs commands and owns files as the ``postgres`` OS user when we are root, else as ourselves."""

    def __init__(self) -> None:
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PgStartError("running as root needs a 'postgres' OS user to run the server") from exc
            self.uid, self.gid = entry.pw_uid, entry.pw_gid
        else:
            self.uid, self.gid = os.getuid(), os.getgid()

    def argv(self, argv: Sequence[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if self.as_root else list(argv)

    def run(self, argv: Sequence[str], *, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(LC_ALL="C", LANG="C", HOME=str(cwd))
        return subprocess.run(
            self.argv(argv), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    def own(self, *paths: Path) -> None:
        if self.as_root:
            for path in paths:
                os.chown(path, self.uid, self.gid)


@functools.cache
def _os_user() -> _OsUser:
    return _OsUser()


SCRATCH_ENV = "NEONDOCTOR_TEST_TMPDIR"
_MIN_SCRATCH_FREE = 512 * 1024 * 1024


@functools.cache
def scratch_root() -> str:
    """Where data dirs go: $NEONDOCTOR_TEST_TMPDIR, else /dev/shm when it is a roomy tmpfs, else /tmp.

    A data dir on tmpfs starts several times faster than on a slow disk; nothing here needs durability.
    """
    forced = os.environ.get(SCRATCH_ENV)
    if forced:
        return forced
    shm = "/dev/shm"
    with contextlib.suppress(OSError):
        usable = os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK)
        if usable and shutil.disk_usage(shm).free >= _MIN_SCRATCH_FREE:
            return shm
    return "/tmp"


_session_dir_lock = threading.Lock()
_session_dir: Path | None = None


def session_dir() -> Path:
    """A per-process scratch dir (CA files, initdb template), removed at exit."""
    global _session_dir
    with _session_dir_lock:
        if _session_dir is None:
            _session_dir = Path(tempfile.mkdtemp(prefix="neondoctor-tests-", dir=scratch_root()))
            os.chmod(_session_dir, 0o755)
            atexit.register(shutil.rmtree, _session_dir, True)
        return _session_dir


@dataclass(frozen=True)
class HarnessCA:
    """One test certificate authority per process, for clusters and fake peers."""

    ca: Any
    path: Path

    def issue(
        self, directory: Path, names: Sequence[str], *, expired: bool = False, mode: str = "ca"
    ) -> tuple[Path, Path]:
        """Write ``server.crt`` and ``server.key`` for these names into ``directory``.

        ``mode`` ``notyet``: valid from tomorrow; ``nochain``: issued by an intermediate CA that the file leaves out.
        """
        now = dt.datetime.now(dt.UTC)
        if expired or mode == "expired":
            leaf = self.ca.issue_cert(
                *names, not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1)
            )
        elif mode == "notyet":
            leaf = self.ca.issue_cert(
                *names, not_before=now + dt.timedelta(days=1), not_after=now + dt.timedelta(days=60)
            )
        elif mode == "nochain":
            leaf = self.ca.create_child_ca().issue_cert(*names)
        else:
            leaf = self.ca.issue_cert(*names)
        pems = leaf.cert_chain_pems[:1] if mode == "nochain" else leaf.cert_chain_pems
        cert_path, key_path = directory / "server.crt", directory / "server.key"
        cert_path.write_bytes(b"".join(blob.bytes() for blob in pems))
        leaf.private_key_pem.write_to_path(str(key_path))
        os.chmod(key_path, 0o600)
        return cert_path, key_path


@functools.cache
def harness_ca() -> HarnessCA:
    import trustme

    ca = trustme.CA(organization_name="neondoctor test CA")
    path = session_dir() / "test-ca.crt"
    ca.cert_pem.write_to_path(str(path))
    return HarnessCA(ca=ca, path=path)


def write_self_signed(directory: Path, names: Sequence[str]) -> tuple[Path, Path]:
    """A self-signed server certificate (no CA behind it) with these names as SANs."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "localhost")])
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    os.chmod(key_path, 0o600)
    return cert_path, key_path


_template_lock = threading.Lock()


def _template(bindir: Path) -> Path:
    """One initdb per process; clusters start from a copy of it."""
    with _template_lock:
        target = session_dir() / f"template-{bindir.parent.name}"
        if (target / "PG_VERSION").is_file():
            return target
        user = _os_user()
        work = session_dir()
        user.own(work)
        pwfile = work / "pwfile"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        user.own(pwfile)
        initdb = user.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(target),
                "-U",
                "postgres",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
                "--wal-segsize=1",
            ],
            cwd=work,
            timeout=120,
        )
        pwfile.unlink()
        if initdb.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise PgStartError(f"initdb failed ({initdb.returncode}):\n{initdb.stdout}\n{initdb.stderr}")
        return target


def _conf_value(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


@dataclass(eq=False)
class PgCluster:
    """A running PostgreSQL server on loopback. Use :func:`start_cluster` to make one."""

    bindir: Path
    basedir: Path
    port: int
    ssl: str | None
    ipv6: bool
    passwords: dict[str, str | None] = field(default_factory=dict, repr=False)
    hba_lines: list[str] = field(default_factory=list)
    ca_path: Path | None = None
    server_cert_path: Path | None = None
    version: int = 0
    host: str = "127.0.0.1"
    _running: bool = field(default=False, repr=False)

    @property
    def datadir(self) -> Path:
        return self.basedir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.datadir

    @property
    def log_path(self) -> Path:
        return self.basedir / SERVER_LOG

    @property
    def hosts(self) -> list[str]:
        return ["127.0.0.1", "::1"] if self.ipv6 else ["127.0.0.1"]

    def url(
        self,
        user: str = "alice",
        password: str | EllipsisType | None = ...,
        dbname: str = "app",
        *,
        host: str | None = None,
        port: int | None = None,
        **params: Any,
    ) -> str:
        """``postgresql://user:pw@host:port/db?params``; the password defaults to the role's known one."""
        secret = self.passwords.get(user) if password is ... else password
        userinfo = quote(user, safe="")
        if secret is not None:
            userinfo += ":" + quote(str(secret), safe="")
        hostpart = host or self.host
        if ":" in hostpart and not hostpart.startswith("["):
            hostpart = f"[{hostpart}]"
        query = urlencode({k: str(v) for k, v in params.items() if v is not None}, quote_via=quote)
        return f"postgresql://{userinfo}@{hostpart}:{port or self.port}/{quote(dbname, safe='')}" + (
            f"?{query}" if query else ""
        )

    def conninfo(self, user: str = "alice", dbname: str = "app", **params: Any) -> dict[str, Any]:
        """Keyword arguments for ``psycopg.connect`` over TCP."""
        kwargs: dict[str, Any] = {"host": self.host, "port": self.port, "user": user, "dbname": dbname}
        if self.passwords.get(user) is not None:
            kwargs["password"] = self.passwords[user]
        kwargs.update(params)
        return kwargs

    def verify_full_params(self) -> dict[str, str]:
        """URL params that make libpq check this cluster's certificate fully."""
        if self.ca_path is None:
            raise ValueError(f"cluster ssl={self.ssl!r} has no CA file")
        return {"sslmode": "verify-full", "sslrootcert": str(self.ca_path)}

    def admin(self, dbname: str = "postgres") -> Any:
        """A superuser psycopg connection over the unix socket, in autocommit."""
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user="postgres",
            dbname=dbname,
            autocommit=True,
            connect_timeout=10,
        )

    def execute(
        self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None, *, dbname: str = "postgres"
    ) -> list[tuple[Any, ...]]:
        """Run one statement as superuser; the rows it returns, if any."""
        with self.admin(dbname) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []

    def log_text(self) -> str:
        return self.log_path.read_bytes().decode("utf-8", "replace") if self.log_path.exists() else ""

    def log_mark(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, mark: int) -> str:
        with self.log_path.open("rb") as log:
            log.seek(mark)
            return log.read().decode("utf-8", "replace")

    def wait_for_log(self, pattern: str, mark: int = 0, timeout: float = 5.0) -> str:
        """Wait until the log after ``mark`` matches ``pattern`` (regex); the log text since the mark."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while True:
            text = self.log_since(mark)
            if regex.search(text):
                return text
            if time.monotonic() >= deadline:
                raise AssertionError(f"server log never matched {pattern!r}; since mark:\n{text}")
            time.sleep(0.02)

    def _pg_ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return _os_user().run(
            [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args], cwd=self.basedir, timeout=timeout
        )

    def _write_hba(self, lines: Sequence[str]) -> None:
        self.hba_lines = list(lines)
        path = self.datadir / "pg_hba.conf"
        path.write_text("\n".join([LOCAL_ADMIN_HBA, *self.hba_lines]) + "\n")
        _os_user().own(path)

    def reload(self) -> None:
        """Reload the config and wait until the server has read it."""
        before = self.log_mark()
        rows = self.execute("SELECT pg_reload_conf()")
        if not rows or rows[0][0] is not True:
            raise PgStartError("pg_reload_conf() failed")
        self.wait_for_log(r"received SIGHUP, reloading configuration files", before)
        time.sleep(0.05)

    def set_hba(self, lines: Sequence[str]) -> None:
        """Replace the host lines of pg_hba.conf (the local trust line for the admin stays first) and reload."""
        self._write_hba(lines)
        self.reload()
        errors = self.execute("SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL")
        if errors:
            raise ValueError(f"pg_hba.conf was not reloaded: {errors}")

    @contextlib.contextmanager
    def hba(self, lines: Sequence[str]) -> Iterator[PgCluster]:
        """Use these hba lines inside the block, then put the old ones back (safe on shared clusters)."""
        previous = list(self.hba_lines)
        self.set_hba(lines)
        try:
            yield self
        finally:
            self.set_hba(previous)

    def set_settings(self, settings: Mapping[str, Any]) -> None:
        """``ALTER SYSTEM SET`` each setting and reload (settings that need a restart do not apply)."""
        with self.admin() as conn:
            for name, value in settings.items():
                conn.execute(f"ALTER SYSTEM SET {name} = {_conf_value(value)}")
        self.reload()

    def start(self) -> None:
        result = self._pg_ctl(
            "-w", "-t", str(START_TIMEOUT), "-l", str(self.log_path), "start", timeout=START_TIMEOUT + 15
        )
        if result.returncode != 0:
            raise PgStartError(
                f"pg_ctl start failed ({result.returncode}) on port {self.port}:\n"
                f"{result.stdout}\n{result.stderr}\n--- server log ---\n{self.log_text()[-4000:]}"
            )
        self._running = True
        _live_clusters.add(self)

    def restart(self) -> None:
        """Stop and start again on the same data dir and port (for settings that need a restart)."""
        self.stop(remove=False)
        self.start()

    def stop(self, *, remove: bool = True) -> None:
        if self._running:
            result = self._pg_ctl("-m", "fast", "-w", "-t", str(_STOP_TIMEOUT), "stop", timeout=_STOP_TIMEOUT + 10)
            if result.returncode != 0:
                self._pg_ctl("-m", "immediate", "-w", "-t", "10", "stop", timeout=20)
            self._running = False
        _live_clusters.discard(self)
        if remove:
            shutil.rmtree(self.basedir, ignore_errors=True)

    @property
    def running(self) -> bool:
        return self._running

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_live_clusters: set[PgCluster] = set()


@atexit.register
def _stop_leftovers() -> None:
    for cluster in list(_live_clusters):
        with contextlib.suppress(Exception):
            cluster.stop()


def start_cluster(
    *,
    ssl: bool | str = False,
    hba: Sequence[str] | None = None,
    settings: Mapping[str, Any] | None = None,
    users: Mapping[str, str | None] | None = None,
    seed_app: bool = True,
    setup_sql: Sequence[str] = (),
    cert_names: Sequence[str] = (),
    ipv6: bool | None = None,
    bindir: Path | None = None,
) -> PgCluster:
    """Start a fresh cluster.

    ``ssl``: False/None (off), True or ``"ca"`` (signed by the test CA), ``"selfsigned"``,
    ``"wrongname"`` (CA-signed, SAN only ``db.wrong.invalid``), ``"expired"`` (CA-signed, expired),
    ``"notyet"`` (CA-signed, valid from tomorrow), ``"nochain"`` (signed by an intermediate the server does not send).
    ``hba``: host lines after ``local all all trust`` (default: scram from 127.0.0.1 and ::1).
    ``settings``: postgresql.conf overrides. ``users``: extra LOGIN roles, name → password (None: no password).
    ``seed_app``: roles alice/bob and database ``app`` with its tables. ``setup_sql``: run as superuser last.
    ``bindir``: the server's binaries (default: :func:`require_bindir`).
    """
    bindir = bindir or require_bindir()
    mode = {False: None, None: None, True: "ca"}.get(ssl, ssl) if not isinstance(ssl, str) else ssl
    if mode is not None and mode not in SSL_MODES:
        raise ValueError(f"ssl must be one of {SSL_MODES} or a bool, not {ssl!r}")
    use_v6 = ipv6_loopback_works() if ipv6 is None else ipv6 and ipv6_loopback_works()
    user = _os_user()
    template = _template(bindir)
    last_error: Exception | None = None
    for _attempt in range(3):
        basedir = Path(tempfile.mkdtemp(prefix="neondoctor-pg-", dir=scratch_root()))
        cluster = PgCluster(bindir=bindir, basedir=basedir, port=free_port(ipv6=use_v6), ssl=mode, ipv6=use_v6)
        try:
            os.chmod(basedir, 0o755)
            user.own(basedir)
            copied = user.run(["cp", "-a", str(template), str(cluster.datadir)], cwd=basedir)
            if copied.returncode != 0:
                raise PgStartError(f"copying the initdb template failed: {copied.stderr}")
            cluster.passwords["postgres"] = SUPERUSER_PASSWORD
            _configure(cluster, mode, settings or {}, cert_names)
            cluster._write_hba(list(DEFAULT_HBA if hba is None else hba))
            cluster.start()
        except PgStartError as exc:
            last_error = exc
            cluster.stop()
            if "could not bind" in str(exc) or "Address already in use" in str(exc):
                continue
            raise
        except BaseException:
            cluster.stop()
            raise
        break
    else:
        raise PgStartError(f"could not start a cluster after 3 tries: {last_error}")
    try:
        _seed(cluster, seed_app=seed_app, users=users or {}, setup_sql=setup_sql)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _configure(cluster: PgCluster, mode: str | None, settings: Mapping[str, Any], cert_names: Sequence[str]) -> None:
    user = _os_user()
    conf: dict[str, Any] = {
        "listen_addresses": ",".join(cluster.hosts),
        "port": cluster.port,
        "unix_socket_directories": str(cluster.socket_dir),
        "fsync": False,
        "synchronous_commit": False,
        "full_page_writes": False,
        "shared_buffers": "16MB",
        "max_wal_senders": 0,
        "wal_level": "minimal",
        "log_connections": True,
        "log_disconnections": True,
        "logging_collector": False,
        "log_line_prefix": "%m [%p] %q%u@%d ",
        "lc_messages": "C",
        "ssl": mode is not None,
    }
    if mode is not None:
        names = [*LOOPBACK_NAMES, *cert_names]
        if mode == "selfsigned":
            cert, key = write_self_signed(cluster.datadir, names)
        else:
            ca = harness_ca()
            cluster.ca_path = ca.path
            cert, key = ca.issue(cluster.datadir, [WRONG_NAME] if mode == "wrongname" else names, mode=mode)
        user.own(cert, key)
        public = cluster.basedir / "server.crt"
        shutil.copyfile(cert, public)
        cluster.server_cert_path = public
        conf.update(ssl_cert_file=str(cert), ssl_key_file=str(key))
    conf.update(settings)
    with (cluster.datadir / "postgresql.conf").open("a") as out:
        out.write("\n# neondoctor test harness\n")
        for name, value in conf.items():
            out.write(f"{name} = {_conf_value(value)}\n")


def _seed(cluster: PgCluster, *, seed_app: bool, users: Mapping[str, str | None], setup_sql: Sequence[str]) -> None:
    from psycopg import sql

    with cluster.admin() as conn:
        cluster.version = int(conn.execute("SHOW server_version_num").fetchone()[0])
        if seed_app:
            for statement in APP_SEED_SQL:
                conn.execute(statement)
            cluster.passwords.update(alice=ALICE_PASSWORD, bob=BOB_PASSWORD)
        for name, password in users.items():
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(password))
            )
            cluster.passwords[name] = password
    if seed_app:
        with cluster.admin("app") as conn:
            conn.execute(APP_TABLES_SQL)
    if setup_sql:
        with cluster.admin() as conn:
            for statement in setup_sql:
                conn.execute(statement)
