"""`ingot monitor query | retention | scan-alarms` against a migrated database."""
from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from typer.testing import CliRunner

from ingot.monitoring.cli import app
from ingot.monitoring.storage import IngestRecord, Reading, write_batch

from .world import T0, build_world

runner = CliRunner()


def _seed(session):
    world = build_world(session)
    point_id = world.points["kunming"]["id"]
    write_batch(session, [IngestRecord(received_at=T0 + timedelta(minutes=i), text="m", accepted=True, point_id=point_id,
                                       kind="minute", data_time=T0 + timedelta(minutes=i),
                                       readings=(Reading("a21026", {"avg": Decimal("12.5")}, "N"),)) for i in range(46)])
    session.commit()
    return point_id


def test_query_json_and_hourly_aggregation(session):
    point_id = _seed(session)
    result = runner.invoke(app, ["query", "--point", str(point_id), "--start", "2026-11-01T00:00:00+00:00",
                                 "--end", "2026-11-01T01:00:00+00:00", "--aggregation", "hour", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows == [{**rows[0], "avg": "12.5", "valid": True, "valid_inputs": 46, "data_time": "2026-11-01T00:00:00+00:00"}]


def test_query_refuses_naive_and_bad_times_with_reason(session):
    point_id = _seed(session)
    naive = runner.invoke(app, ["query", "--point", str(point_id), "--start", "2026-11-01T00:00:00"])
    assert naive.exit_code == 2 and "naive_time" in naive.output
    garbage = runner.invoke(app, ["query", "--point", str(point_id), "--start", "yesterday"])
    assert garbage.exit_code == 2 and "ISO 8601" in garbage.output


def test_retention_and_scan(session):
    _seed(session)
    assert runner.invoke(app, ["retention", "--days", "0"]).exit_code == 2
    result = runner.invoke(app, ["retention", "--days", "1"])
    assert result.exit_code == 0 and "deleted 46 measurements, 46 raw packets" in result.output
    scan = runner.invoke(app, ["scan-alarms"])
    assert scan.exit_code == 0 and "opened 1 alarm(s)" in scan.output  # Kunming silent since 2026-11-01; the others were registered just now
