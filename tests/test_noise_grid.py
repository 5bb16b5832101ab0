"""The benchmark grid's RL-Zoo commands: what each algorithm name trains, and that the noise flag parses."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
grid = pytest.importorskip("benchmarks.grid")


def _params(argv: list[str]) -> dict:
    from rl_zoo3.utils import StoreDict

    parser = argparse.ArgumentParser()
    parser.add_argument("-params", nargs="+", action=StoreDict, default={})
    parser.add_argument("--algo")
    known, _ = parser.parse_known_args(argv)
    return {"algo": known.algo, **known.params}


def _run(env: str, algo: str, noise: str, discretized: bool = False) -> grid.Run:
    return grid.Run(grid.setting_name(noise), env, algo, 0, 1000, discretized, 2, 1, noise)


@pytest.mark.parametrize(
    "env, algo, discretized, expected",
    [
        ("CartPole-v1", "ppo", False, {"algo": "ppo"}),
        ("CartPole-v1", "sppo", False, {"algo": "sppo"}),
        ("CartPole-v1", "ppo_weighted", False, {"algo": "sppo", "alpha": 1.5, "beta": 0.0}),
        ("Pendulum-v1", "ppo", True, {"algo": "sppo", "alpha": 1.0, "beta": 0.0}),
        ("Pendulum-v1", "a2c", True, {"algo": "sa2c", "alpha": 1.0, "beta": 0.0}),
        ("Pendulum-v1", "ppo_weighted", True, {"algo": "sppo", "alpha": 20.5, "beta": 0.0}),
    ],
)
def test_algorithm_names_map_to_zoo_runs(env, algo, discretized, expected):
    assert _params(_run(env, algo, "clean", discretized).argv("logs")) == expected


def test_noise_setting_becomes_the_callback_entry():
    params = _params(_run("CartPole-v1", "sa2c", "flip:0.1").argv("logs"))
    assert params["callback"] == [{"sb3_symmetric.noise.RewardNoiseCallback": {"kind": "flip", "p": 0.1}}]
    with pytest.raises(ValueError, match="Unknown noise setting"):
        grid.noise_callback("normal:0.1")


def test_preset_is_seed_major_and_complete():
    runs = grid.make_runs(grid.PRESETS["classic"])
    assert len(runs) == 5 * 2 * 5 * 5
    assert len(set(runs)) == len(runs)
    assert [run.seed for run in runs] == sorted(run.seed for run in runs)
