"""Run real clients (Python drivers in-process or in a child, node clients, pgjdbc, psql) against a URL or code.

Each runner returns ``Outcome(ok, user, ssl, error)``: what the client saw, not what we think it would.
Node clients live in ``$NEONDOCTOR_NODE_DIR`` (``npm install pg postgres drizzle-orm`` there; .ci/run does it);
pgjdbc is Debian's ``/usr/share/java/postgresql.jar`` run by the JDK.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent / "clientlab"
QUERY = (
    "select current_user::text, coalesce((select ssl from pg_stat_ssl where pid = pg_backend_pid()), false)"
)
JDBC_JAR = Path("/usr/share/java/postgresql.jar")
TIMEOUT = 30


@dataclass
class Outcome:
    ok: bool
    user: str | None = None
    ssl: bool | None = None
    error: str = ""


def _child(code: str, env: dict[str, str] | None = None) -> Outcome:
    """Run Python code in a child; it prints the outcome as JSON on its last line."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT,
                          env={**os.environ, **(env or {})}, check=False)
    lines = done.stdout.strip().splitlines()
    if not lines:
        return Outcome(False, error=done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output")
    return Outcome(**json.loads(lines[-1]))


_REPORT = textwrap.dedent("""
    import json as _json
    def _report(row=None, error=None):
        if error is not None:
            print(_json.dumps({"ok": False, "error": f"{type(error).__name__}: {error}"}))
        else:
            print(_json.dumps({"ok": True, "user": row[0], "ssl": bool(row[1])}))
""")


def psycopg2_url(url: str) -> Outcome:
    return _child(_REPORT + textwrap.dedent(f"""
        import psycopg2
        try:
            with psycopg2.connect({url!r}, connect_timeout=10) as c, c.cursor() as cur:
                cur.execute({QUERY!r}); _report(cur.fetchone())
        except Exception as e:
            _report(error=e)
    """))


def psycopg_url(url: str) -> Outcome:
    return _child(_REPORT + textwrap.dedent(f"""
        import psycopg
        try:
            with psycopg.connect({url!r}, connect_timeout=10) as c:
                _report(c.execute({QUERY!r}).fetchone())
        except Exception as e:
            _report(error=e)
    """))


def psql_url(url: str) -> Outcome:
    psql = shutil.which("psql")
    if psql is None:
        return Outcome(False, error="psql missing")
    done = subprocess.run([psql, "-XAtq", "-F", " ", "-c", QUERY, url], capture_output=True, text=True,
                          timeout=TIMEOUT, env={**os.environ, "PGCONNECT_TIMEOUT": "10"}, check=False)
    if done.returncode != 0:
        return Outcome(False, error=done.stderr.strip())
    user, ssl = done.stdout.split()
    return Outcome(True, user, ssl == "t")


def asyncpg_code(code: str) -> Outcome:
    """Run the printed asyncpg code (it ends with ``conn = await asyncpg.connect(...)``) and query."""
    wrapped = "import asyncio\nasync def _main():\n" + textwrap.indent(code, "    ")
    wrapped += f"\n    row = await conn.fetchrow({QUERY!r})\n    await conn.close()\n    return tuple(row)\n"
    wrapped += "try:\n    _report(asyncio.run(_main()))\nexcept Exception as e:\n    _report(error=e)\n"
    return _child(_REPORT + wrapped)


def sqlalchemy_code(code: str, *, run_async: bool) -> Outcome:
    if run_async:
        wrapped = "import asyncio\nasync def _main():\n" + textwrap.indent(code, "    ")
        wrapped += textwrap.indent(textwrap.dedent(f"""
            from sqlalchemy import text as _text
            try:
                async with engine.connect() as c:
                    return tuple((await c.execute(_text({QUERY!r}))).one())
            finally:
                await engine.dispose()
        """), "    ")
        wrapped += "try:\n    _report(asyncio.run(_main()))\nexcept Exception as e:\n    _report(error=e)\n"
    else:
        wrapped = "try:\n" + textwrap.indent(code + textwrap.dedent(f"""
            from sqlalchemy import text as _text
            with engine.connect() as c:
                _report(tuple(c.execute(_text({QUERY!r})).one()))
        """), "    ") + "\nexcept Exception as e:\n    _report(error=e)\n"
    return _child(_REPORT + wrapped)


def django_code(code: str) -> Outcome:
    wrapped = code + textwrap.dedent(f"""
        import django
        from django.conf import settings
        settings.configure(DATABASES=DATABASES, USE_TZ=True)
        django.setup()
        from django.db import connection
        try:
            with connection.cursor() as cur:
                cur.execute({QUERY!r}); _report(cur.fetchone())
        except Exception as e:
            _report(error=e)
    """)
    return _child(_REPORT + wrapped)


NODE_HOMES = (Path("/opt/neondoctor-node"), Path.home() / ".cache" / "neondoctor-node")
"""Where .ci/install-node-clients puts the node clients (root, or a user)."""


def node_dir(name: str = "current") -> Path | None:
    """The folder with node_modules/pg etc.: $NEONDOCTOR_NODE_DIR, else what .ci/install-node-clients made."""
    candidates = [Path(p) for p in [os.environ.get("NEONDOCTOR_NODE_DIR")] if p and name == "current"]
    candidates += [home / name for home in NODE_HOMES]
    for path in candidates:
        if (path / "node_modules" / ("pg" if name == "current" else "postgres")).is_dir():
            return path
    return None


def node_package_major(node: Path, package: str) -> int:
    data = json.loads((node / "node_modules" / package / "package.json").read_text())
    return int(data["version"].split(".")[0])


def node_url(client: str, url: str, node: Path, options: dict[str, object] | None = None) -> Outcome:
    extra = [json.dumps(options)] if options else []
    done = subprocess.run(["node", str(HERE / "probe.mjs"), client, url, *extra], capture_output=True, text=True,
                          timeout=TIMEOUT, env={**os.environ, "NEONDOCTOR_NODE_DIR": str(node)}, check=False)
    return _node_outcome(done)


def node_code(code: str, node: Path) -> Outcome:
    """Run printed postgres.js code (it defines ``sql``) as a module inside the node folder."""
    script = node / f"neondoctor-probe-{uuid.uuid4().hex}.mjs"
    script.write_text(code + textwrap.dedent(f"""
        try {{
          const r = await sql.unsafe({json.dumps(QUERY)});
          await sql.end();
          console.log(JSON.stringify({{ ok: true, user: r[0].current_user, ssl: r[0].coalesce }}));
        }} catch (e) {{
          console.log(JSON.stringify({{ ok: false, error: String((e.code || "") + " " + e.message) }}));
        }}
        process.exit(0);
    """))
    try:
        done = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=TIMEOUT, check=False)
    finally:
        script.unlink()
    return _node_outcome(done)


def _node_outcome(done: subprocess.CompletedProcess[str]) -> Outcome:
    lines = done.stdout.strip().splitlines()
    if not lines:
        return Outcome(False, error=done.stderr.strip()[-300:] or "no output")
    data = json.loads(lines[-1])
    return Outcome(data["ok"], data.get("user"), data.get("ssl"), data.get("error", ""))


def jdbc_ready(build_dir: Path) -> Path | None:
    """Compile the JDBC probe once; None when the JDK or pgjdbc is missing."""
    if not JDBC_JAR.exists() or shutil.which("javac") is None:
        return None
    if not (build_dir / "Probe.class").exists():
        build_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["javac", "-d", str(build_dir), str(HERE / "Probe.java")], check=True, timeout=120)
    return build_dir


def jdbc_url(url: str, build_dir: Path) -> Outcome:
    done = subprocess.run(["java", "-cp", f"{build_dir}:{JDBC_JAR}", "Probe", url], capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    out = done.stdout.strip()
    if out.startswith("OK "):
        _, user, ssl = out.split(" ")
        return Outcome(True, user, ssl == "true")
    return Outcome(False, error=out or done.stderr.strip()[-300:])
