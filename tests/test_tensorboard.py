"""
``rl_zoo3 train ... --tensorboard-log DIR`` works with the installed extras, and the symmetric keys reach TensorBoard
where docs/zoo.rst says: ``DIR/<env>/<SymPPO|SymA2C>_1/``.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rl_zoo3")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


@pytest.mark.parametrize(
    "algo, run_name, keys",
    [
        ("sppo", "SymPPO_1", ["train/reverse_loss", "train/adv_sign_flip_fraction"]),
        ("sa2c", "SymA2C_1", ["train/reverse_loss"]),
    ],
)
def test_zoo_tensorboard_log_has_the_symmetric_keys(tmp_path: Path, algo: str, run_name: str, keys: list[str]) -> None:
    command = [
        sys.executable, "-m", "sb3_symmetric.zoo", "train", "--algo", algo, "--env", "CartPole-v1",
        "-n", "2048", "--seed", "0", "--num-threads", "1", "--eval-freq", "-1", "--log-interval", "1",
        "-f", "logs", "--tensorboard-log", "tb",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]

    events = list((tmp_path / "tb" / "CartPole-v1" / run_name).glob("events.out.tfevents.*"))
    assert len(events) == 1, sorted(str(p.relative_to(tmp_path)) for p in (tmp_path / "tb").rglob("*"))
    accumulator = event_accumulator.EventAccumulator(str(events[0]))
    accumulator.Reload()
    scalars = accumulator.Tags()["scalars"]
    for key in keys:
        assert key in scalars, f"{key} not in {scalars}"
        values = [event.value for event in accumulator.Scalars(key)]
        # one point per train() call (--log-interval 1), all finite
        assert len(values) >= 2 and all(math.isfinite(v) for v in values)
    if "train/adv_sign_flip_fraction" in keys:
        fractions = [event.value for event in accumulator.Scalars("train/adv_sign_flip_fraction")]
        # a share of samples; CartPole's all-positive rewards make normalization flip some early on
        assert all(0.0 <= f <= 1.0 for f in fractions) and max(fractions) > 0
