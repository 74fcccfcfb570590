"""Runs every benchmark script in this folder in turn; each prints its own figures beside its named peer.

    .venv/bin/python bench/run_all.py          (or: make bench)

matching.py runs under the bench-only virtualenv bench/out/venv when it exists (the peers live there, never in the
project's dependencies; see matching.py for how to create it), else under this interpreter with its peers skipped.
Set INGOT_BENCH_POSTGRES=postgresql://…/bench (a database of its own: it is wiped) to add PostgreSQL to the HJ 212
ingest and market API benches. The sizes are each script's defaults; docs/benchmarks.md gives the commands used for
the recorded figures.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCH_PYTHON = HERE / "out" / "venv" / "bin" / "python"


def commands() -> list[tuple[str, list[str]]]:
    postgres = os.environ.get("INGOT_BENCH_POSTGRES")
    runs = []
    for script in sorted(HERE.glob("*.py")):
        if script.name == Path(__file__).name:
            continue
        python = sys.executable
        if script.name == "matching.py":
            if BENCH_PYTHON.exists():
                python = str(BENCH_PYTHON)
            else:
                print(f"note: {BENCH_PYTHON} does not exist, so matching.py runs without its peers", flush=True)
        runs.append((script.name, [python, str(script)]))
        if postgres and script.name == "hj212_ingest.py":
            runs[-1][1].extend(["--postgres", postgres])
        if postgres and script.name == "market_api.py":
            runs.append((f"{script.name} (PostgreSQL)", [python, str(script), "--database", postgres]))
    return runs


def main() -> int:
    failures = 0
    for name, command in commands():
        print(f"\n=== {name} ===", flush=True)
        failures += subprocess.run(command, check=False).returncode != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
