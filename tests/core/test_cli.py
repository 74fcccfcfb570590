from __future__ import annotations

from typer.testing import CliRunner

from ingot.cli import app

runner = CliRunner()


def test_users_create_list_disable(db_url):
    created = runner.invoke(app, ["users", "create", "ops.admin", "--role", "admin", "--password", "long-enough-pw"])
    assert created.exit_code == 0, created.output
    listed = runner.invoke(app, ["users", "list"])
    assert "ops.admin" in listed.output and "admin" in listed.output
    disabled = runner.invoke(app, ["users", "disable", "ops.admin"])
    assert disabled.exit_code == 0
    assert "disabled" in runner.invoke(app, ["users", "list"]).output


def test_cli_errors_are_messages_with_non_zero_exit(db_url):
    weak = runner.invoke(app, ["users", "create", "someone", "--role", "admin", "--password", "short"])
    assert weak.exit_code == 2
    assert "密码至少" in weak.output and "password must have" in weak.output
    missing = runner.invoke(app, ["users", "disable", "nobody"])
    assert missing.exit_code == 2 and "no such user" in missing.output


def test_db_upgrade_is_idempotent(db_url):
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
