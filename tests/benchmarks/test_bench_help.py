"""Every benchmark answers `--help`: an operator reads its options before running it on a production-sized box."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = sorted(path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
                    for folder in ("tests/benchmarks", "tests/cluster") for path in (ROOT / folder).glob("bench_*.py"))


def test_every_benchmark_is_found() -> None:
    assert "tests.benchmarks.bench_pipeline" in BENCHMARKS
    assert "tests.cluster.bench_cluster" in BENCHMARKS


@pytest.mark.parametrize("module", BENCHMARKS)
def test_help_prints_the_options(module: str) -> None:
    done = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
    assert "options:" in done.stdout
