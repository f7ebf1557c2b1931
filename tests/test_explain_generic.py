"""`neondoctor explain` on texts no English libpq example shows: localized messages, errno wordings, values that
betray a broken connection string, and general signals. Every text is real (the rule files name their sources)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from neondoctor.cli import cli

GERMAN_PASSWORD = (
    "psql: Fehler: Verbindung zum Server auf »127.0.0.1«, Port 56871 fehlgeschlagen: FATAL:  "
    "Passwort-Authentifizierung für Benutzer »alice« fehlgeschlagen"
)
HOST_UNDEFINED = "Error: getaddrinfo ENOTFOUND undefined"
HOST_UNEXPANDED = 'psql: error: could not translate host name "${DB_HOST}" to address: Name or service not known'
WINDOWS_10061_ES = (
    "System.Net.Sockets.SocketException (10061): No se puede establecer una conexión ya que el equipo de destino "
    "denegó expresamente dicha conexión."
)
GO_NO_SUCH_HOST = "dial tcp: lookup db.example.invalid on 127.0.0.1:53: no such host"
# sqlx's "Connection refused (os error 61)" was the unknown client here until a specific rule learned it.
UNKNOWN_CLIENT = (
    'TCP-Fehlercode "10061": Es konnte keine Verbindung hergestellt werden, da der Zielcomputer die Verbindung '
    "verweigerte."
)
GENERIC_PRIORITY = 30


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    monkeypatch.delenv("NEONDOCTOR_RULES", raising=False)
    monkeypatch.setenv("NEONDOCTOR_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))  # parsed once per run
    monkeypatch.setenv("NO_COLOR", "1")


def explain(text: str) -> tuple[Result, list[dict[str, object]]]:
    result = CliRunner().invoke(cli, ["explain", "--json", text])
    return result, json.loads(result.stdout)["matches"]


def explain_text(text: str) -> Result:
    return CliRunner().invoke(cli, ["explain", text])


def test_a_german_locale_password_failure_is_the_password_rule_with_the_user_named() -> None:
    result, matches = explain(GERMAN_PASSWORD)
    assert result.exit_code == 0
    top = matches[0]
    assert (top["id"], top["layer"]) == ("auth-password-failed", "auth")
    assert top["captures"] == {"user": "alice"}
    assert "no role 'alice' at all" in str(top["hint"])
    assert any("Percent-encode" in step for step in top["fix"])  # type: ignore[union-attr]
    shown = explain_text(GERMAN_PASSWORD).stdout
    assert "Password authentication failed  [auth-password-failed]" in shown
    assert "│ psql: Fehler: Verbindung zum Server auf »127.0.0.1«" in shown


@pytest.mark.parametrize(
    "text",
    [
        'psql: error: connection to server at "127.0.0.1", port 56871 failed: FATAL:  database "nope" does not exist',
        'psql: 错误: 连接到"127.0.0.1"上的服务器，端口56871失败：致命错误:  数据库 "nope" 不存在',
        'psql: エラー: "127.0.0.1"、ポート56871のサーバーへの接続に失敗しました: '
        'FATAL:  データベース"nope"は存在しません',
        'psql: ошибка: подключиться к серверу "127.0.0.1", порту 56871 не удалось: '
        'ВАЖНО:  база данных "nope" не существует',
    ],
)
def test_the_same_error_in_other_languages_gives_the_same_rule_and_value(text: str) -> None:
    _, matches = explain(text)
    assert matches[0]["id"] == "database-does-not-exist"
    assert matches[0]["captures"] == {"database": "nope"}


def test_a_host_of_undefined_is_a_connection_string_problem_not_dns() -> None:
    result, matches = explain(HOST_UNDEFINED)
    assert result.exit_code == 0
    top = matches[0]
    assert (top["id"], top["layer"]) == ("url-value-undefined", "url")
    assert "'undefined' is what an unset variable prints" in str(top["hint"])
    assert any("neondoctor url" in step for step in top["fix"])  # type: ignore[union-attr]
    assert any(match["layer"] == "dns" for match in matches[1:])


def test_an_unexpanded_variable_as_host_names_the_variable() -> None:
    _, matches = explain(HOST_UNEXPANDED)
    top = matches[0]
    assert (top["id"], top["layer"]) == ("url-value-unexpanded-variable", "url")
    assert top["captures"] == {"value": "${DB_HOST}"}
    assert "'${DB_HOST}'" in str(top["hint"])
    assert "Note: the value is the literal text '${DB_HOST}'" in explain_text(HOST_UNEXPANDED).stdout


def test_windows_10061_in_spanish_is_a_refused_tcp_connection() -> None:
    result, matches = explain(WINDOWS_10061_ES)
    assert result.exit_code == 0
    top = matches[0]
    assert top["layer"] == "tcp"
    assert top["id"] == "signal-connection-refused"
    assert any("listens on that port" in step for step in top["fix"])  # type: ignore[union-attr]


def test_go_no_such_host_is_dns_with_the_host_captured() -> None:
    _, matches = explain(GO_NO_SUCH_HOST)
    top = matches[0]
    assert (top["id"], top["layer"]) == ("dns-host-not-found", "dns")
    assert top["captures"] == {"host": "db.example.invalid"}


def test_an_unknown_clients_wording_gets_a_low_confidence_answer_not_no_match() -> None:
    result, matches = explain(UNKNOWN_CLIENT)
    assert result.exit_code == 0
    top = matches[0]
    assert (top["id"], top["layer"]) == ("signal-connection-refused", "tcp")
    assert int(top["priority"]) <= GENERIC_PRIORITY  # type: ignore[call-overload]
    if "guess" in top:
        assert top["guess"]
    if "confidence" in top:
        assert str(top["confidence"]).lower() in {"low", "guess", "weak"}
    assert any("neondoctor check" in step for step in top["fix"])  # type: ignore[union-attr]
    assert "No rule matches" not in explain_text(UNKNOWN_CLIENT).stdout


def test_a_vague_database_connection_failure_points_to_check() -> None:
    text = (
        "Unable to connect to database: failed to connect to `host=127.0.0.1 user=alice database=app`: "
        "failed to receive message (unexpected EOF)"
    )
    _, matches = explain(text)
    assert matches[0]["id"] == "signal-database-connection-failed"
    assert matches[0]["fix"][0].startswith("Run `neondoctor check")  # type: ignore[index]


@pytest.mark.parametrize(
    "text",
    [
        "npm ERR! code ERESOLVE\nnpm ERR! ERESOLVE unable to resolve dependency tree",
        "Traceback (most recent call last):\n  File \"<string>\", line 1, in <module>\nKeyError: 'user_id'",
        '192.168.58.11 - - [03/Nov/2024:06:09:29 +0000] "GET / HTTP/1.1" 502 559 "-" "Mozilla/5.0"',
    ],
)
def test_texts_that_are_not_database_errors_still_get_no_match(text: str) -> None:
    result = explain_text(text)
    assert result.exit_code == 1
    assert "No rule matches this text." in result.stdout
