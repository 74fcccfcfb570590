"""The indexed engine gives exactly the verdicts of the benchmark's naive per-unit, per-rule evaluator."""
from __future__ import annotations

import importlib.util
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from ingot.policy.catalogue import load_catalogue
from ingot.policy.engine import Engine

BENCH = Path(__file__).resolve().parents[2] / "bench" / "compliance.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("compliance_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("as_of", [date(2017, 12, 31), date(2018, 1, 1), date(2019, 6, 30), date(2021, 1, 1)])
def test_same_verdicts_as_naive_loop(bench, as_of):
    catalogue = load_catalogue()
    units = bench.synthetic_registry(1500, seed=7)
    engine = Counter(bench.verdict_signature(Engine(catalogue, as_of).evaluate(units)))
    naive = Counter(bench.naive_evaluate(catalogue, units, as_of))
    assert engine == naive
    assert {verdict for _, _, verdict, _ in engine} >= {"pass", "fail", "missing_data", "not_applicable"}
