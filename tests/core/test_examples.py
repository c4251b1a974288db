"""Every example under examples/ runs as a subprocess, exits 0 and prints what it shows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

# file -> lines (substrings) its output must contain
EXPECTED = {
    "pattern1_simple.py": ["Success: validated 2 rows from data.csv: 0 invalid", "outcome=succeeded exit_code=0",
                           "Failure: exit_code=1"],
    "pattern2_long_running.py": ["training finished: pattern=long_running exit code 0, progress 100%",
                                 "[output] epoch 5/5", "[event] run #2 started", "second run: succeeded",
                                 "cancelled: cancelled by the user"],
    "pattern3_concurrent.py": ["corrupt3.png   exit=2 cannot decode corrupt3.png", "5 of 6 items succeeded",
                               "with fail_fast: failed, cancelled, cancelled"],
    "pattern4_fire_and_forget.py": ["returned at once: run #1 status=queued", "get_result while pending: None",
                                    "after restart: run #1 succeeded: sent 'Welcome!' to user@example.com"],
    "pattern5_periodic.py": ["'cleanup_temp_files': every second", "cleanup: removed 3 temp files",
                             "schedule removed"],
    "pattern6_pooled.py": ["pooled run #", "succeeded", "runs served by", "runs in the registry: 10", "advisor: pooled"],
    "combined_pipeline.py": ["1. cleanup scheduled", "2. processed 5/5 videos", "later: sent 'videos done'"],
    "pattern_advisor.py": ["the guide's summary call             -> long_running", "Pooled: Many short Python runs"],
    "fastworker_style.py": ["submit -> succeeded: processed report.csv", "get_result now: None",
                            "callback got run #3: sent 'Welcome!' to a@example.com", "async callback got run #4: failed (2)",
                            "Progress: 8/8", "cancelled: cancelled by the user"],
}


def run_example(name: str, *args: str, timeout: float = 12) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PRISMQ_DESKTOP_HOME", "PRISMQ_RUN_MODE")}
    try:
        return subprocess.run([sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired as exc:  # subprocess.run kills the child first
        out = [x.decode(errors="replace") if isinstance(x, bytes) else (x or "") for x in (exc.stdout, exc.stderr)]
        raise AssertionError(f"{name} did not finish in {timeout}s; output so far:\n{out[0]}\n{out[1]}") from None


def test_every_example_is_covered():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)
    readme = (EXAMPLES / "README.md").read_text()
    assert all(name in readme for name in EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs_with_a_data_dir(name, tmp_path):
    data = tmp_path / "data"
    proc = run_example(name, str(data))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for line in EXPECTED[name]:
        assert line in proc.stdout, f"{line!r} not in the output of {name}:\n{proc.stdout}\n{proc.stderr}"
    if name != "pattern_advisor.py":
        assert (data / "registry.sqlite3").is_file()  # it used the data dir it was given


def test_example_without_a_data_dir_uses_a_temporary_one():
    proc = run_example("pattern4_fire_and_forget.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "after restart: run #1 succeeded" in proc.stdout
