"""SymRecurrentPPO / SymMaskablePPO as drop-ins for sb3-contrib's RecurrentPPO / MaskablePPO."""

import contextlib
import inspect
import itertools
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch as th

sb3_contrib = pytest.importorskip("sb3_contrib")

from gymnasium.wrappers import FlattenObservation  # noqa: E402
from sb3_contrib import TRPO, MaskablePPO, RecurrentPPO  # noqa: E402
from sb3_contrib.common.envs import (  # noqa: E402
    InvalidActionEnvDiscrete,
    InvalidActionEnvMultiBinary,
    InvalidActionEnvMultiDiscrete,
)
from sb3_contrib.common.maskable.distributions import (  # noqa: E402
    MaskableCategoricalDistribution,
    MaskableMultiCategoricalDistribution,
)
from sb3_contrib.common.maskable.evaluation import evaluate_policy as evaluate_masked  # noqa: E402
from stable_baselines3 import A2C, DQN, PPO  # noqa: E402
from stable_baselines3.common.base_class import BaseAlgorithm  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402
from stable_baselines3.common.envs import IdentityEnvMultiDiscrete  # noqa: E402
from stable_baselines3.common.logger import KVWriter, Logger  # noqa: E402

import sb3_symmetric.common.base  # noqa: E402
from sb3_symmetric import SymA2C, SymMaskablePPO, SymmetricPolicyLoss, SymPPO, SymRecurrentPPO  # noqa: E402
from sb3_symmetric.common.base import _read_checkpoint_data, saved_algorithm_name  # noqa: E402

# RL-Zoo's subprocess helpers and the wheel/venv fixtures of test_zoo.py
pytest.importorskip("rl_zoo3")
from test_zoo import TRAIN, load_yaml, run, wheel, zoo_venv  # noqa: E402, F401

ROOT = Path(__file__).resolve().parent.parent

SPACES = {
    # RecurrentPPO 2.9.2 itself fails in train() on MultiBinary actions (its buffer hands int8 actions to
    # Bernoulli.log_prob), so that space has no case here
    SymRecurrentPPO: {
        "Discrete": lambda: make_vec_env("CartPole-v1", n_envs=2, seed=0),
        "MultiDiscrete": lambda: make_vec_env(lambda: FlattenObservation(IdentityEnvMultiDiscrete(3)), n_envs=2, seed=0),
    },
    SymMaskablePPO: {
        "Discrete": lambda: make_vec_env(lambda: InvalidActionEnvDiscrete(dim=6, n_invalid_actions=3), n_envs=2, seed=0),
        "MultiDiscrete": lambda: make_vec_env(
            lambda: InvalidActionEnvMultiDiscrete(dims=[3, 4], n_invalid_actions=2), n_envs=2, seed=0
        ),
        "MultiBinary": lambda: make_vec_env(
            lambda: InvalidActionEnvMultiBinary(dims=3, n_invalid_actions=1), n_envs=2, seed=0
        ),
    },
}
PARENT = {SymRecurrentPPO: RecurrentPPO, SymMaskablePPO: MaskablePPO}
POLICY = {SymRecurrentPPO: "MlpLstmPolicy", SymMaskablePPO: "MlpPolicy"}
CASES = [(algo, space) for algo in SPACES for space in SPACES[algo]]
CASE_IDS = [f"{algo.__name__}-{space}" for algo, space in CASES]


def _small(algo: type) -> dict:
    return dict(n_steps=64, batch_size=32, n_epochs=3)


def _params(model) -> list[th.Tensor]:
    return [p.detach().clone() for p in model.policy.parameters()]


def _train(algo: type, space: str, steps: int = 256, parent: bool = False, **kwargs):
    model_class = PARENT[algo] if parent else algo
    model = model_class(POLICY[algo], SPACES[algo][space](), seed=0, **{**_small(algo), **kwargs})
    model.learn(steps)
    return model


@pytest.mark.parametrize("algo, space", CASES, ids=CASE_IDS)
def test_alpha_one_beta_zero_is_the_parent_bit_for_bit_and_defaults_differ(algo, space):
    ours = _train(algo, space, alpha=1.0, beta=0.0)
    reference = _train(algo, space, parent=True)
    assert all(th.equal(a, b) for a, b in zip(_params(ours), _params(reference), strict=True))
    for key in ("train/policy_gradient_loss", "train/value_loss", "train/loss", "train/clip_fraction"):
        assert ours.logger.name_to_value[key] == reference.logger.name_to_value[key], key
    assert np.isfinite(ours.logger.name_to_value["train/reverse_loss"])

    default = _train(algo, space)
    assert not all(th.allclose(a, b) for a, b in zip(_params(default), _params(reference), strict=True))


class _Dumps(KVWriter):
    def __init__(self) -> None:
        self.written: list[dict] = []

    def write(self, key_values: dict, key_excluded: dict, step: int = 0) -> None:
        self.written.append({k: v for k, v in key_values.items() if k.startswith("train/")})


@pytest.mark.parametrize("algo", list(SPACES), ids=lambda a: a.__name__)
def test_schedules_value_clipping_and_early_stop_are_the_parents(algo, capsys):
    """With alpha=1, beta=0: progress schedules, clip_range_vf and target_kl's early stop as the parent's train()."""
    knobs = dict(
        learning_rate=lambda progress: 0.01 * progress,
        clip_range=lambda progress: 0.3 * progress,
        clip_range_vf=lambda progress: 0.05 * progress,
        target_kl=0.004,
        verbose=1,
    )
    models, dumps, stdout = [], [], []
    for model_class, kwargs in ((algo, dict(alpha=1.0, beta=0.0)), (PARENT[algo], {})):
        model = model_class(POLICY[algo], SPACES[algo]["Discrete"](), seed=0, **_small(algo), **knobs, **kwargs)
        dumps.append(_Dumps())
        model.set_logger(Logger(None, [dumps[-1]]))
        model.learn(3 * 128)
        models.append(model)
        stdout.append([line for line in capsys.readouterr().out.splitlines() if line.startswith("Early stopping at step")])
    ours, reference = models
    assert all(th.equal(a, b) for a, b in zip(_params(ours), _params(reference), strict=True))
    # every train() call logs what the parent's logs (the last one is still in name_to_value), plus the symmetric keys
    symmetric_keys = ("train/reverse_loss", "train/adv_sign_flip_fraction")
    logged = [{k: v for k, v in d.items() if k not in symmetric_keys} for d in dumps[0].written]
    # three rollouts of 128 steps: dumped before the 1st, 2nd, 3rd train() call
    assert logged == dumps[1].written and len(logged) == 3 and logged[0] == {} and logged[1] and logged[2]
    logged = {k: v for k, v in ours.logger.name_to_value.items() if k not in symmetric_keys}
    assert logged == reference.logger.name_to_value
    # the early stop happened, and its message is the parent's
    assert stdout[0] == stdout[1] and stdout[1]


@pytest.mark.parametrize("kind", ["Discrete", "MultiDiscrete"])
@pytest.mark.parametrize("alpha, beta, rce_z", [(0.5, 1.0, -1.0), (0.2, 3.0, -2.0)])
def test_masked_gradient_against_enumeration_over_legal_actions(kind, alpha, beta, rce_z):
    """pi is the masked probability: "the other actions" are the other *legal* ones."""
    gen = th.Generator().manual_seed(0)
    batch, nvec = 48, ([6] if kind == "Discrete" else [3, 4])
    logits = (th.randn(batch, sum(nvec), generator=gen, dtype=th.float64) * 1.5).requires_grad_(True)
    legal = th.rand(batch, sum(nvec), generator=gen) < 0.6
    # Every dimension keeps at least one legal action
    for start in np.cumsum([0, *nvec[:-1]]):
        legal[:, start] = True
    dist = (
        MaskableCategoricalDistribution(nvec[0]) if kind == "Discrete" else MaskableMultiCategoricalDistribution(nvec)
    ).proba_distribution(logits)
    dist.apply_masking(legal.numpy())
    with th.no_grad():
        actions = dist.sample()
    advantages = th.randn(batch, generator=gen, dtype=th.float64)
    old_log_prob = (dist.log_prob(actions) + 0.5 * th.randn(batch, generator=gen, dtype=th.float64)).detach()
    ratio = th.exp(dist.log_prob(actions) - old_log_prob)
    terms = SymmetricPolicyLoss(alpha, beta, rce_z).clipped(advantages, ratio, old_log_prob, 0.2)
    (grad,) = th.autograd.grad(terms.loss, logits)

    # Reference: softmax over the legal actions of each dimension, every legal joint action enumerated
    ref_logits = logits.detach().clone().requires_grad_(True)
    parts = th.split(ref_logits.masked_fill(~legal, -th.inf), nvec, dim=1)
    probs = [th.softmax(p, dim=1) for p in parts]
    taken = actions.reshape(batch, -1).long()
    pi = th.ones(batch, dtype=th.float64)
    other = th.zeros(batch, dtype=th.float64)
    for combo in itertools.product(*[range(n) for n in nvec]):
        prob = th.ones(batch, dtype=th.float64)
        is_legal = th.ones(batch, dtype=th.bool)
        for d, a in enumerate(combo):
            prob = prob * probs[d][:, a]
            is_legal &= legal[:, int(sum(nvec[:d])) + a]
        is_taken = (taken == th.tensor(combo)).all(dim=1)
        other = other + th.where(is_legal & ~is_taken, prob, 0.0)
        pi = th.where(is_taken, prob, pi)
    ref_ratio = pi / th.exp(old_log_prob)
    clipped = th.clamp(ref_ratio, 0.8, 1.2)
    m = (advantages * ref_ratio <= advantages * clipped).detach().to(th.float64)
    rl = -th.min(advantages * ref_ratio, advantages * clipped).mean()
    reverse = (-m * advantages * rce_z * other / th.exp(old_log_prob)).mean()
    (ref_grad,) = th.autograd.grad(alpha * rl + beta * reverse, ref_logits)

    assert (~legal).any() and 0 < m.sum() < batch
    assert th.allclose(terms.reverse_loss, reverse, rtol=0, atol=1e-12)
    assert th.allclose(grad, ref_grad, rtol=0, atol=1e-12)
    # 1 - pi is the probability of the other legal actions: the masked distribution gives illegal ones none
    assert th.allclose(1 - pi.detach(), other.detach(), rtol=0, atol=1e-12)


def test_recurrent_gradient_with_padded_sequences():
    """One minibatch of SymRecurrentPPO: the loss and gradient against enumeration, padding excluded."""
    model = SymRecurrentPPO("MlpLstmPolicy", make_vec_env("CartPole-v1", n_envs=2, seed=0), n_steps=64, batch_size=64, seed=0)
    model.learn(128)
    policy = model.policy
    captured = {}
    original = policy._get_action_dist_from_latent

    def capture(latent_pi):
        captured["dist"] = original(latent_pi)
        return captured["dist"]

    policy._get_action_dist_from_latent = capture  # type: ignore[method-assign]
    rollout_data = next(iter(model.rollout_buffer.get(64)))
    mask = rollout_data.mask > 1e-8
    assert (~mask).any(), "the minibatch must hold padding for the test to mean anything"
    actions = rollout_data.actions.long().flatten()
    _, log_prob, _ = policy.evaluate_actions(
        rollout_data.observations, actions, rollout_data.lstm_states, rollout_data.episode_starts
    )
    probs = captured["dist"].distribution.probs
    advantages = rollout_data.advantages
    advantages = (advantages - advantages[mask].mean()) / (advantages[mask].std() + 1e-8)
    old_log_prob = rollout_data.old_log_prob
    # Garbage where padded: must not reach the loss
    old_log_prob = th.where(mask, old_log_prob, th.tensor(float("inf")))
    params = [p for p in policy.parameters() if p.requires_grad]
    ratio = th.exp(log_prob - old_log_prob)
    terms = SymmetricPolicyLoss(0.5, 2.0, -1.0).clipped(advantages, ratio, old_log_prob, 0.2, mask=mask)
    grads = th.autograd.grad(terms.loss, params, retain_graph=True, allow_unused=True)

    other = sum(th.where(actions != a, probs[:, a], 0.0) for a in range(probs.shape[1]))
    pi = probs.gather(1, actions[:, None]).squeeze(1)
    ref_ratio = pi[mask] / th.exp(old_log_prob[mask])
    adv = advantages[mask]
    clipped = th.clamp(ref_ratio, 0.8, 1.2)
    m = (adv * ref_ratio <= adv * clipped).float().detach()
    rl = -th.min(adv * ref_ratio, adv * clipped).mean()
    reverse = (-m * adv * -1.0 * other[mask] / th.exp(old_log_prob[mask])).mean()
    ref_grads = th.autograd.grad(0.5 * rl + 2.0 * reverse, params, allow_unused=True)

    assert th.isfinite(terms.loss)
    assert th.allclose(terms.loss, 0.5 * rl + 2.0 * reverse, rtol=1e-5, atol=1e-6)
    n_compared = 0
    for g, r in zip(grads, ref_grads, strict=True):
        if r is None:
            assert g is None or not g.any()
            continue
        assert th.allclose(g, r, rtol=1e-4, atol=1e-6)
        n_compared += int(r.abs().max() > 1e-6)
    assert n_compared > 2


def test_box_action_space_is_refused():
    # RecurrentPPO takes Box actions; the reverse term needs discrete ones, so SymRecurrentPPO says how to wrap
    with pytest.raises(ValueError, match=r"DiscretizeAction\(env, n_bins=11\)"):
        SymRecurrentPPO("MlpLstmPolicy", "Pendulum-v1")
    # MaskablePPO refuses Box itself, before any of our code runs
    with pytest.raises(AssertionError, match="only supports"):
        SymMaskablePPO("MlpPolicy", "Pendulum-v1")


@pytest.mark.parametrize("algo", [SymRecurrentPPO, SymMaskablePPO])
def test_policy_aliases_are_the_parents(algo):
    assert algo.policy_aliases == PARENT[algo].policy_aliases


@pytest.mark.parametrize("algo, space", [(SymRecurrentPPO, "Discrete"), (SymMaskablePPO, "Discrete")])
def test_save_load_without_env_predicts_the_same(algo, space, tmp_path):
    model = _train(algo, space, alpha=0.3, beta=2.0, rce_z=-0.5)
    model.save(tmp_path / "model")
    loaded = algo.load(tmp_path / "model")
    assert (loaded.alpha, loaded.beta, loaded.rce_z) == (0.3, 2.0, -0.5)
    assert loaded.env is None
    obs = model.observation_space.sample()[None]
    if algo is SymRecurrentPPO:
        kwargs = dict(state=None, episode_start=np.ones(1, dtype=bool), deterministic=True)
    else:
        kwargs = dict(action_masks=np.ones((1, model.action_space.n), dtype=bool), deterministic=True)
    assert np.array_equal(model.predict(obs, **kwargs)[0], loaded.predict(obs, **kwargs)[0])
    assert all(th.equal(a, b) for a, b in zip(_params(model), _params(loaded), strict=True))


# --- load(): which algorithm saved a checkpoint, and the warning when it is not this class ---

# what saved_algorithm_name() reads from each class's checkpoint (DQN: none of the actor-critic algorithms)
SAVED_NAMES = {
    PPO: "PPO",
    A2C: "A2C",
    RecurrentPPO: "RecurrentPPO",
    MaskablePPO: "MaskablePPO",
    TRPO: "TRPO",
    SymPPO: "SymPPO",
    SymA2C: "SymA2C",
    SymRecurrentPPO: "SymRecurrentPPO",
    SymMaskablePPO: "SymMaskablePPO",
    DQN: None,
}
SYMMETRIC_PARENT = {SymPPO: PPO, SymA2C: A2C, SymRecurrentPPO: RecurrentPPO, SymMaskablePPO: MaskablePPO}


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> Path:
    """One untrained checkpoint per class, saved as <class name>.zip."""
    directory = tmp_path_factory.mktemp("checkpoints")
    for algo in SAVED_NAMES:
        policy = "MlpLstmPolicy" if algo in (RecurrentPPO, SymRecurrentPPO) else "MlpPolicy"
        kwargs = dict(buffer_size=64) if algo is DQN else dict(n_steps=16)
        if algo in (PPO, RecurrentPPO, MaskablePPO, TRPO, SymPPO, SymRecurrentPPO, SymMaskablePPO):
            kwargs.update(batch_size=16)
        algo(policy, "CartPole-v1", device="cpu", **kwargs).save(directory / algo.__name__)
    with zipfile.ZipFile(directory / "no-data.zip", "w") as archive:
        archive.writestr("_stable_baselines3_version", "2.9.2")
    return directory


def test_saved_algorithm_name_tells_the_checkpoints_apart(checkpoints):
    for algo, name in SAVED_NAMES.items():
        # the path without ".zip", as load() takes it
        assert saved_algorithm_name(_read_checkpoint_data(checkpoints / algo.__name__, None)) == name, algo.__name__
    # policy_class is not always a class (e.g. replaced through custom_objects): the PPO family is still named
    assert saved_algorithm_name({"n_epochs": 10, "policy_class": "MlpPolicy"}) == "PPO"
    assert saved_algorithm_name({"n_epochs": 10, "rce_z": -1.0}) == "SymPPO"
    assert saved_algorithm_name({"n_steps": 5}) is None
    assert saved_algorithm_name({"normalize_advantage": False}) is None
    assert saved_algorithm_name({}) is None


def test_read_checkpoint_data_applies_custom_objects_and_leaves_a_file_where_it_was(checkpoints):
    assert _read_checkpoint_data(checkpoints / "SymPPO", {"learning_rate": 0.25})["learning_rate"] == 0.25
    assert _read_checkpoint_data(checkpoints / "SymPPO", None)["learning_rate"] == 3e-4
    assert _read_checkpoint_data(checkpoints / "no-data", None) is None
    with open(checkpoints / "SymPPO.zip", "rb") as file:
        assert _read_checkpoint_data(file, None)["rce_z"] == -1.0
        # load() reads the same file object again
        assert not file.closed and file.tell() == 0


@pytest.mark.parametrize("sym", list(SYMMETRIC_PARENT), ids=lambda a: a.__name__)
def test_load_warns_with_a_message_that_says_what_applies(sym, checkpoints):
    parent, name = SYMMETRIC_PARENT[sym], sym.__name__
    hint = f"(pass them to load(), e.g. {name}.load(path, alpha=1.0, beta=0.0) trains as the parent {parent.__name__}"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = sym.load(checkpoints / parent.__name__, alpha=1.0, beta=0.0)
    [warning] = [w for w in record if "saved by" in str(w.message)]
    assert str(warning.message) == (
        f"{name}.load(): the checkpoint was saved by {parent.__name__}, not {name}. It holds no alpha/beta/rce_z, "
        f"so these apply: {{'alpha': 1.0, 'beta': 0.0, 'rce_z': -1.0}} {hint}, or load it with {parent.__name__})."
    )
    # a UserWarning that points at the caller, not at load() (mutmut's trampoline adds a frame: no stricter check)
    assert warning.category is UserWarning and warning.filename != sb3_symmetric.common.base.__file__
    assert (model.alpha, model.beta, model.rce_z) == (1.0, 0.0, -1.0)

    other = SymA2C if sym is not SymA2C else SymPPO
    # another symmetric class's file holds its coefficients: the warning names the class only
    with pytest.warns(UserWarning) as record, contextlib.suppress(Exception):
        sym.load(checkpoints / other.__name__)
    assert [str(w.message) for w in record if "saved by" in str(w.message)] == [
        f"{name}.load(): the checkpoint was saved by {other.__name__}, not {name}."
    ]
    with pytest.warns(UserWarning) as record, contextlib.suppress(Exception):
        sym.load(checkpoints / "DQN")
    assert [str(w.message) for w in record if "saved by" in str(w.message)] == [
        f"{name}.load(): the checkpoint was saved by an unknown algorithm, not {name}. It holds no alpha/beta/rce_z, "
        f"so these apply: {{'alpha': 0.5, 'beta': 1.0, 'rce_z': -1.0}} {hint}, or load it with the class that saved it)."
    ]
    # a zip without data: the warning, then SB3's own error
    with pytest.warns(UserWarning, match="saved by an unknown algorithm"), pytest.raises(AssertionError, match="No data"):
        sym.load(checkpoints / "no-data")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*saved by.*")
        assert type(sym.load(checkpoints / name)) is sym


def test_load_hands_every_argument_to_the_parents_load(checkpoints, monkeypatch):
    calls = []

    def parents_load(cls, path, **kwargs):
        calls.append((cls, path, kwargs))
        return "loaded"

    monkeypatch.setattr(BaseAlgorithm, "load", classmethod(parents_load))
    path = checkpoints / "SymPPO"
    assert SymPPO.load(path) == "loaded"
    defaults = dict(env=None, device="auto", custom_objects=None, print_system_info=False, force_reset=True)
    assert calls[-1] == (SymPPO, path, defaults)
    # the same defaults as SB3's own load()
    assert {k: p.default for k, p in inspect.signature(SymPPO.load).parameters.items() if k in defaults} == defaults
    chosen = dict(env="env", device="cpu", custom_objects={"n_epochs": 3}, print_system_info=True, force_reset=False)
    assert SymPPO.load(path, **chosen, alpha=1.0) == "loaded"
    assert calls[-1] == (SymPPO, path, {**chosen, "alpha": 1.0})


@pytest.mark.slow
def test_sym_maskable_ppo_learns_invalid_action_env():
    # 8 actions, 5 of them illegal at each step: a uniform policy over the legal ones scores 1/3 per step
    env = make_vec_env(lambda: InvalidActionEnvDiscrete(dim=8, n_invalid_actions=5), n_envs=4, seed=0)
    model = SymMaskablePPO("MlpPolicy", env, n_steps=64, batch_size=64, learning_rate=3e-3, seed=0)
    model.learn(8000)
    eval_env = InvalidActionEnvDiscrete(dim=8, n_invalid_actions=5)
    mean_reward, _ = evaluate_masked(model, eval_env, n_eval_episodes=10, deterministic=True, warn=False)
    print(f"SymMaskablePPO on InvalidActionEnvDiscrete(8, 5): {mean_reward} of 100")
    # Measured 100.0 (seed 0); a uniform choice among the 3 legal actions scores about 33
    assert mean_reward >= 90


def _linear(value: float):
    return lambda progress_remaining: progress_remaining * value


@pytest.mark.slow
@pytest.mark.extended
def test_sym_recurrent_ppo_learns_cartpole_without_velocities():
    """The YAML entry (RL-Zoo's ppo_lstm CartPoleNoVel-v1 settings) trains SymRecurrentPPO to RL-Zoo's score."""
    import yaml
    from rl_zoo3 import import_envs  # noqa: F401 - registers CartPoleNoVel-v1
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize
    from torch import nn

    entry = yaml.safe_load((ROOT / "hyperparams" / "sppo_lstm.yml").read_text())["CartPoleNoVel-v1"]
    env = VecNormalize(make_vec_env("CartPoleNoVel-v1", n_envs=entry["n_envs"], seed=0), gamma=entry["gamma"])
    kwargs = {key: entry[key] for key in ("n_steps", "batch_size", "gae_lambda", "gamma", "n_epochs", "ent_coef")}
    kwargs.update(alpha=entry["alpha"], beta=entry["beta"], rce_z=entry["rce_z"])
    kwargs.update(learning_rate=_linear(0.001), clip_range=_linear(0.2))
    policy_kwargs = eval(entry["policy_kwargs"], {"dict": dict, "nn": nn})  # our own YAML file, as RL-Zoo reads it
    model = SymRecurrentPPO(entry["policy"], env, policy_kwargs=policy_kwargs, seed=0, **kwargs)
    model.learn(int(entry["n_timesteps"]))
    env.training, env.norm_reward = False, False
    mean_reward, _ = evaluate_policy(model, env, n_eval_episodes=10, deterministic=True)
    print(f"SymRecurrentPPO on CartPoleNoVel-v1 after {entry['n_timesteps']:.0f} steps: {mean_reward}")
    # Measured 500.0 (seed 0), as RL-Zoo's ppo_lstm benchmark; 475 is CartPole-v1's reward threshold
    assert mean_reward >= 475


@pytest.fixture(scope="module")
def lstm_workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("zoo-lstm-runs")


def test_sppo_lstm_sampler_is_rl_zoos_ppo_lstm_space_plus_the_weights():
    optuna = pytest.importorskip("optuna")
    from rl_zoo3 import hyperparams_opt

    from sb3_symmetric import tuning, zoo

    zoo.register()
    assert hyperparams_opt.HYPERPARAMS_SAMPLER["sppo_lstm"] is tuning.sample_sppo_lstm_params
    ours, theirs = (optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask() for _ in range(2))
    sampled = tuning.sample_sppo_lstm_params(ours, 2, 1, {})
    reference = hyperparams_opt.sample_ppo_lstm_params(theirs, 2, 1, {})
    assert set(sampled) == set(reference) | {"alpha", "beta", "rce_z"}
    assert set(ours.params) == set(theirs.params) | {"alpha", "beta", "rce_z"}


@pytest.mark.slow
def test_zoo_train_then_enjoy_sppo_lstm(zoo_venv, lstm_workdir):  # noqa: F811 - the fixture imported above
    args = ["train", "--algo", "sppo_lstm", "--env", "CartPoleNoVel-v1", "-n", "1024", "--eval-freq", "-1"]
    result = run([zoo_venv.rl_zoo3, *args, *TRAIN], lstm_workdir)
    assert "sppo_lstm.yml" in result.stdout
    run_dir = lstm_workdir / "logs" / "sppo_lstm" / "CartPoleNoVel-v1_1"
    config = load_yaml(run_dir / "CartPoleNoVel-v1" / "config.yml")
    assert (config["alpha"], config["beta"], config["rce_z"]) == (0.5, 1.0, -1.0)
    assert (config["policy"], config["n_envs"], config["n_steps"]) == ("MlpLstmPolicy", 8, 32)
    args = ["enjoy", "--algo", "sppo_lstm", "--env", "CartPoleNoVel-v1", "-f", "logs", "--no-render", "-n", "200"]
    result = run([zoo_venv.rl_zoo3, *args], lstm_workdir)
    assert "Loading logs/sppo_lstm/CartPoleNoVel-v1_1/CartPoleNoVel-v1.zip" in result.stdout
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*saved by.*")
        model = SymRecurrentPPO.load(run_dir / "CartPoleNoVel-v1.zip")
    assert (model.alpha, model.beta, model.rce_z) == (0.5, 1.0, -1.0)


@pytest.mark.slow
def test_zoo_trial_id_replays_an_sppo_lstm_trial(zoo_venv, lstm_workdir):  # noqa: F811 - the fixture imported above
    optuna = pytest.importorskip("optuna")
    from sb3_symmetric.tuning import sample_sppo_lstm_params

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(lstm_workdir / "study.log")))
    study = optuna.create_study(storage=storage, study_name="sppo-lstm", direction="maximize")
    # small rollouts and one epoch keep the replay short; the weights are sampled
    study.enqueue_trial({"batch_size_pow": 5, "n_steps_pow": 5, "n_epochs": 1, "net_arch": "tiny"})
    trial = study.ask()
    sample_sppo_lstm_params(trial, 2, 1, {})
    study.tell(trial, 1.0)
    args = ["train", "--algo", "sppo_lstm", "--env", "CartPoleNoVel-v1", "-n", "256", "-params", "n_envs:1"]
    study_args = ["--storage", "study.log", "--study-name", "sppo-lstm", "--trial-id", "0", "--eval-freq", "-1"]
    result = run(
        [zoo_venv.rl_zoo3, *args, *study_args, "--num-threads", "1", "--seed", "0", "-f", "logs-optuna"], lstm_workdir
    )
    assert "Loading from Optuna study..." in result.stdout
    config = load_yaml(
        next((lstm_workdir / "logs-optuna" / "sppo_lstm").glob("CartPoleNoVel-v1_*")) / "CartPoleNoVel-v1" / "config.yml"
    )
    assert (config["alpha"], config["beta"], config["rce_z"]) == tuple(trial.params[k] for k in ("alpha", "beta", "rce_z"))
    assert (config["n_steps"], config["batch_size"], config["n_epochs"]) == (32, 32, 1)


def _trpo_update(w: float) -> tuple[list[th.Tensor], list[th.Tensor], float]:
    """One TRPO update on a fixed CartPole rollout, its surrogate multiplied by w (through the advantages)."""
    from sb3_contrib import TRPO

    # No advantage normalization, which would undo the scaling; the value targets (returns) are left as they are
    model = TRPO(
        "MlpPolicy",
        make_vec_env("CartPole-v1", n_envs=2, seed=0),
        n_steps=256,
        batch_size=512,
        normalize_advantage=False,
        seed=0,
    )
    _, callback = model._setup_learn(512, None)
    model.collect_rollouts(model.env, callback, model.rollout_buffer, n_rollout_steps=model.n_steps)
    before = _params(model)
    model.rollout_buffer.advantages *= w  # w * mean(A * r) = mean(w * A * r)
    model.train()
    return before, _params(model), model.logger.name_to_value["train/policy_objective"]


def test_trpo_update_does_not_change_when_the_surrogate_is_scaled():
    """The reverse term only scales PPO's surrogate gradient (by alpha + beta*|Z|); TRPO's KL-constrained step
    is invariant to that scale, so a symmetric TRPO would train exactly like TRPO (docs/contrib.rst)."""
    before, reference, objective = _trpo_update(1.0)
    step = max((a - b).abs().max().item() for a, b in zip(reference, before, strict=True))
    for w in (1.5, 20.5):
        _, scaled, scaled_objective = _trpo_update(w)
        difference = max((a - b).abs().max().item() for a, b in zip(scaled, reference, strict=True))
        print(f"TRPO, surrogate x {w}: largest parameter step {step:.3e}, largest difference to w=1 {difference:.3e}")
        assert scaled_objective == pytest.approx(w * objective, rel=1e-5)
        # Measured: a step of 4.4e-02 and differences of 1.9e-07 (w=1.5) and 2.6e-07 (w=20.5), float32 rounding
        assert step > 1e-2
        assert difference < 1e-5


SWAP_CONFTEST = """
import inspect

import pytest
import sb3_contrib
import sb3_contrib.ppo_mask
import sb3_contrib.ppo_recurrent

from sb3_symmetric import SymMaskablePPO, SymRecurrentPPO

for module in (sb3_contrib, sb3_contrib.ppo_recurrent):
    module.RecurrentPPO = SymRecurrentPPO
for module in (sb3_contrib, sb3_contrib.ppo_mask):
    module.MaskablePPO = SymMaskablePPO
OURS = (SymRecurrentPPO, SymMaskablePPO)


def _uses_ours(item):
    if item.fspath.basename in ("test_lstm.py", "test_invalid_actions.py"):
        return True
    params = getattr(getattr(item, "callspec", None), "params", {})
    if params:
        return any(value in OURS for value in params.values())
    source = inspect.getsource(item.function)
    return "RecurrentPPO" in source or "MaskablePPO" in source


def pytest_collection_modifyitems(config, items):
    keep = [item for item in items if _uses_ours(item)]
    config.hook.pytest_deselected(items=[item for item in items if item not in keep])
    items[:] = keep


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None and "needs a discrete action space" in str(call.excinfo.value):
        report.outcome = "skipped"
        report.longrepr = (str(item.fspath), 0, "Box action space: refused by the symmetric classes by design")
"""


@pytest.mark.slow
@pytest.mark.extended
def test_sb3_contrib_own_tests_pass_with_our_classes_swapped_in(tmp_path):
    """sb3-contrib's tests of RecurrentPPO and MaskablePPO, run on SymRecurrentPPO and SymMaskablePPO."""
    import os
    import shutil
    import subprocess
    import sys

    # .ci/run unpacks sb3-contrib's sdist into build/ at install time; SB3_CONTRIB_TESTS names another tests/ folder
    source = os.environ.get("SB3_CONTRIB_TESTS") or str(ROOT / "build" / "sb3_contrib-2.9.2" / "tests")
    if not (Path(source) / "test_lstm.py").exists():
        pytest.skip(
            f"sb3-contrib's tests are not at {source}: `pip download --no-binary :all: --no-deps sb3-contrib==2.9.2 "
            "-d build && tar xzf build/sb3_contrib-2.9.2.tar.gz -C build` (as .ci/run does), or set SB3_CONTRIB_TESTS"
        )
    files = (
        "test_lstm.py",
        "test_invalid_actions.py",
        "test_run.py",
        "test_cnn.py",
        "test_deterministic.py",
        "test_train_eval_mode.py",
    )
    for name in files:
        shutil.copy(Path(source) / name, tmp_path / name)
    (tmp_path / "conftest.py").write_text(SWAP_CONFTEST)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    print(result.stdout[-3000:])
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]
