"""Arguments the way SB3 users pass them: NumPy scalars, wrong types, other classes' checkpoints, noise settings."""

import contextlib
import warnings

import numpy as np
import pytest
from stable_baselines3 import A2C, PPO

from sb3_symmetric import RewardNoiseCallback, SymA2C, SymPPO

contrib = pytest.importorskip("sb3_contrib")
from sb3_contrib import MaskablePPO, RecurrentPPO  # noqa: E402

from sb3_symmetric import SymMaskablePPO, SymRecurrentPPO  # noqa: E402

PAIRS = [(SymPPO, PPO), (SymA2C, A2C), (SymRecurrentPPO, RecurrentPPO), (SymMaskablePPO, MaskablePPO)]
IDS = [sym.__name__ for sym, _ in PAIRS]
POLICY = {RecurrentPPO: "MlpLstmPolicy"}


def _make(algo: type, **kwargs):
    parent = next(p for s, p in PAIRS if algo in (s, p))
    return algo(POLICY.get(parent, "MlpPolicy"), "CartPole-v1", n_steps=16, **kwargs)


@pytest.mark.parametrize("sym, parent", PAIRS, ids=IDS)
def test_numpy_scalars_are_accepted_and_stored_as_floats(sym, parent):
    model = _make(sym, alpha=np.float32(0.25), beta=np.int64(2), rce_z=np.float64(-1.5))
    assert (model.alpha, model.beta, model.rce_z) == (0.25, 2.0, -1.5)
    assert all(type(v) is float for v in (model.alpha, model.beta, model.rce_z))


@pytest.mark.parametrize("sym, parent", PAIRS, ids=IDS)
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(alpha=True), TypeError, "`alpha` must be a real number"),
        (dict(beta=np.bool_(False)), TypeError, "`beta` must be a real number"),
        (dict(rce_z="-1"), TypeError, "`rce_z` must be a real number"),
        (dict(alpha=np.float32("nan")), ValueError, "`alpha` must be a finite number >= 0"),
        (dict(rce_z=np.float64(1.0)), ValueError, "`rce_z` must be a finite negative number"),
        (dict(alpha=0, beta=np.int32(0)), ValueError, "both 0"),
    ],
)
def test_bad_coefficients_are_refused_at_construction(sym, parent, kwargs, error, match):
    with pytest.raises(error, match=match):
        _make(sym, **kwargs)


@pytest.mark.parametrize("sym, parent", PAIRS, ids=IDS)
def test_loading_the_parents_checkpoint_warns_naming_both_classes(sym, parent, tmp_path):
    _make(parent).save(tmp_path / "parent")
    with pytest.warns(UserWarning, match=rf"saved by {parent.__name__}, not {sym.__name__}") as record:
        model = sym.load(tmp_path / "parent")
    message = str(next(w.message for w in record if "saved by" in str(w.message)))
    assert "alpha" in message and "0.5" in message  # the defaults that now apply are named
    assert (model.alpha, model.beta, model.rce_z) == (0.5, 1.0, -1.0)
    # Choosing the coefficients still warns (it is still another class's file) and they are used
    with pytest.warns(UserWarning, match=r"'alpha': 1\.0, 'beta': 0\.0"):
        model = sym.load(tmp_path / "parent", alpha=1.0, beta=0.0)
    assert (model.alpha, model.beta) == (1.0, 0.0)


@pytest.mark.parametrize("sym, parent", PAIRS, ids=IDS)
def test_loading_another_symmetric_class_warns_and_own_class_does_not(sym, parent, tmp_path):
    other = SymA2C if sym is not SymA2C else SymPPO
    _make(other).save(tmp_path / "other")
    # the weights may not fit the other class: the warning comes first
    with pytest.warns(UserWarning, match=rf"saved by {other.__name__}, not {sym.__name__}"), contextlib.suppress(Exception):
        sym.load(tmp_path / "other")
    _make(sym, alpha=0.3).save(tmp_path / "own")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*saved by.*")
        assert sym.load(tmp_path / "own").alpha == 0.3
    # a file object is read twice: its position is restored
    with open(tmp_path / "own.zip", "rb") as file, warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*saved by.*")
        assert sym.load(file).alpha == 0.3


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(seed="x"), ValueError, "seed must be None or an integer >= 0; got 'x'"),
        (dict(seed=-1), ValueError, "seed must be None or an integer >= 0"),
        (dict(seed=True), ValueError, "seed must be None or an integer"),
        (dict(seed=1.5), ValueError, "seed must be None or an integer"),
        (dict(kind="flip", p="0.1"), TypeError, "p must be a real number"),
        (dict(kind="gaussian", sigma=True), TypeError, "sigma must be a real number"),
        (dict(kind=["flip"]), ValueError, "Unknown reward noise kind"),
        (dict(kind="flip", p=1.5), ValueError, r"must be in \[0, 1\]"),
    ],
)
def test_reward_noise_arguments_are_checked_at_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        RewardNoiseCallback(**kwargs)


def test_reward_noise_accepts_numpy_scalars():
    callback = RewardNoiseCallback("flip", p=np.float32(0.25), seed=np.int64(3))
    assert callback.scale == 0.25 and callback.seed == 3 and type(callback.seed) is int
