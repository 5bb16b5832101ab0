"""benchmarks/speed.py as a user runs it: the operator counts it prints are the work the reverse term adds."""

from __future__ import annotations

import copy
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch as th

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
    header = "| 95% CI | total ratio | fastest rounds | load average | operators per train() (symmetric vs parent) |"
    assert header in done.stdout
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


def test_each_timed_round_starts_from_the_same_parameters_and_optimizer_state():
    """Trained on between rounds, the two models would time different work; speed.py restores both before each call."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from benchmarks.speed import _restore, _snapshot

    model = PPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=1, seed=0), n_steps=64, batch_size=32, n_epochs=2, seed=0)
    model.learn(64)
    snapshot = _snapshot(model)
    first_state = copy.deepcopy(snapshot[1]["state"])
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.train()
    assert any(not th.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))
    _restore(model, snapshot)
    assert all(th.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))
    steps = [state["step"] for state in model.policy.optimizer.state_dict()["state"].values()]
    assert steps and all(int(step) == int(snapshot[1]["state"][0]["step"]) for step in steps)
    model.train()  # the restored state trains: the optimizer state is the model's own, not a detached copy
    assert any(not th.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))
    # and a second restore after training is as good as the first: training did not write into the snapshot
    _restore(model, snapshot)
    assert all(th.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))
    restored = model.policy.optimizer.state_dict()["state"]
    assert all(
        th.equal(restored[k][name], kept[name])
        for k, kept in first_state.items()
        for name in ("step", "exp_avg", "exp_avg_sq")
    )


def test_median_interval_brackets_the_median_and_narrows_with_more_rounds():
    from benchmarks.speed import _median_interval

    rng = np.random.default_rng(1)
    few, many = (list(1.0 + 0.05 * rng.standard_normal(n)) for n in (20, 2000))
    low_few, high_few = _median_interval(few)
    low_many, high_many = _median_interval(many)
    assert low_few <= float(np.median(few)) <= high_few
    assert low_many <= float(np.median(many)) <= high_many
    assert high_many - low_many < (high_few - low_few) / 4
    assert _median_interval([1.03] * 50) == pytest.approx((1.03, 1.03))
