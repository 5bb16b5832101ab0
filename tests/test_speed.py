"""benchmarks/speed.py as a user runs it: the operator counts it prints are the work the reverse term adds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ROW = re.compile(r"(?P<pair>\w+ / \w+) +buffer +\d+: .*operators per train\(\) (?P<ours>\d+) vs (?P<parent>\d+)")


def speed(*args: str) -> dict[str, tuple[int, int]]:
    done = subprocess.run(
        [sys.executable, "benchmarks/speed.py", "--rounds", "1", "--warmup", "0", "--count-ops", "--markdown", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {m["pair"]: (int(m["ours"]), int(m["parent"])) for m in map(ROW.search, done.stdout.splitlines()) if m}
    assert "| fastest rounds | load average | operators per train() (symmetric vs parent) |" in done.stdout
    return rows


@pytest.mark.slow
def test_symmetric_ppo_runs_fewer_operators_than_ppo_and_a2c_at_most_nine_more():
    """
    The PPO family's policy term is one autograd node: fewer operators than the parent's six recorded operations.
    SymA2C adds the reverse term's own arithmetic: 9 operators with torch 2.13 (benchmarks/README.md); more would be
    a regression in the loss code.
    """
    rows = speed("--cases", "MLP CartPole SymPPO")
    rows.update(speed("--cases", "MLP CartPole SymA2C"))
    ours, parent = rows["SymPPO / PPO"]
    assert ours < parent
    ours, parent = rows["SymA2C / A2C"]
    assert parent < ours <= parent + 9
