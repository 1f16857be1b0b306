"""The libFuzzer harnesses (tests/fuzz/fuzz_parse.py, fuzz_extract.py) run for a bounded number of inputs, each
input under libFuzzer's time limit and the process under its memory limit: no crash, no hang, no blow-up.

A fixed seed and fixed seed inputs make every run try the same inputs. For longer runs, start a harness by hand
(its docstring says how); what it finds is saved as a file to add to the tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.fuzz.mutations import corpus_documents
from tests.fuzz.test_fuzz_extract import PHRASES

ROOT = Path(__file__).resolve().parents[2]


def run_harness(module: str, folder: Path, runs: int, seeds: list[bytes]) -> str:
    """Run the harness `module` for `runs` inputs from `seeds`; its output (libFuzzer writes to stderr)."""
    inputs, seed_folder = folder / "inputs", folder / "seeds"
    inputs.mkdir()
    seed_folder.mkdir()
    for number, seed in enumerate(seeds):
        (seed_folder / f"seed-{number}").write_bytes(seed)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", module, f"-runs={runs}", "-seed=1", "-timeout=10", "-rss_limit_mb=1536",
         f"-artifact_prefix={folder}/", str(inputs), str(seed_folder)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    findings = sorted(path.name for path in folder.iterdir() if path.name.startswith(("crash-", "timeout-", "oom-")))
    assert done.returncode == 0, f"{module} found {findings}:\n{done.stderr[-4000:]}"
    assert findings == []
    assert f"Done {runs} runs" in done.stderr, done.stderr[-2000:]
    return done.stderr


def test_the_parse_harness_runs_clean(tmp_path: Path) -> None:
    seeds = [path.read_bytes() for path in corpus_documents()[::50]]
    output = run_harness("tests.fuzz.fuzz_parse", tmp_path, 2_000, seeds)
    assert "Dictionary: " in output, "the XML and markup tokens are used"


def test_the_extract_harness_runs_clean(tmp_path: Path) -> None:
    # The harness reads a length byte, the title, then the text.
    seeds = [bytes([40]) + " ".join(PHRASES[n:n + 12]).encode() for n in range(0, len(PHRASES), 6)]
    run_harness("tests.fuzz.fuzz_extract", tmp_path, 3_000, seeds)
