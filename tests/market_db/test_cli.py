"""`ingot market`: list products from YAML, notice versions, run sessions and end of day, check invariants."""
from __future__ import annotations

from datetime import timedelta

import yaml
from typer.testing import CliRunner

from ingot.core.timeutil import utcnow
from ingot.market import gateway
from ingot.market.cli import app
from ingot.market.common import trading_day
from tests.market_db.helpers import INDIUM_RULES

runner = CliRunner()


def test_the_centre_operates_from_the_command_line(db_url, tmp_path):
    gateway.forget_cores()
    from ingot.core.db import unit_of_work
    from ingot.market import accounts
    from ingot.core.auth import SYSTEM

    with unit_of_work(db_url) as session:
        accounts.create_warehouse(session, SYSTEM, code="KM01", name_zh="昆明交割库", division_code="530100")
    definition = {"code": "SN", "name_zh": "锡锭", "name_en": "Tin ingot", "metal": "tin", "price_unit": "t",
                  "units_per_lot": 1, "reference_price_fen": 23_000_000,
                  "rules": {**INDIUM_RULES, "tick_fen": 1000, "quality_spec": {"Sn_min_pct": "99.90"}}}
    product_file = tmp_path / "sn.yaml"
    product_file.write_text(yaml.safe_dump(definition, allow_unicode=True), encoding="utf-8")
    listed = runner.invoke(app, ["product-add", str(product_file)])
    assert listed.exit_code == 0, listed.output
    again = runner.invoke(app, ["product-add", str(product_file)])
    assert again.exit_code == 2 and "already exists" in again.output

    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({**definition["rules"], "band_ppm": 40_000}, allow_unicode=True), encoding="utf-8")
    today = trading_day(utcnow())
    retro = runner.invoke(app, ["version-add", "SN", str(rules_file), "--effective-on", today.isoformat()])
    assert retro.exit_code == 2 and "retroactive" in retro.output
    noticed = runner.invoke(app, ["version-add", "SN", str(rules_file), "--effective-on",
                                  (today + timedelta(days=3)).isoformat()])
    assert noticed.exit_code == 0, noticed.output

    assert runner.invoke(app, ["session", "continuous"]).exit_code == 0
    wrong = runner.invoke(app, ["session", "continuous"])
    assert wrong.exit_code == 2 and "invalid_transition" in wrong.output
    assert runner.invoke(app, ["session", "bogus"]).exit_code == 2
    eod = runner.invoke(app, ["eod"])
    assert eod.exit_code == 0 and "SN" in eod.output and "previous" in eod.output
    products = runner.invoke(app, ["products"])
    assert "SN" in products.output
    check = runner.invoke(app, ["check"])
    assert check.exit_code == 0, check.output
    assert runner.invoke(app, ["reconcile", today.isoformat()]).exit_code == 0


def test_demo_command_prints_the_market_users(db_url):
    gateway.forget_cores()
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "client1" in result.output and "reserve_agency" in result.output
    assert runner.invoke(app, ["check"]).exit_code == 0
