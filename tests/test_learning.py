"""Learning tests with real thresholds (fixed seeds; about a minute each on one core)."""

import pytest
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_symmetric import DiscretizeAction, SymA2C, SymPPO

pytestmark = pytest.mark.slow

# RL-Zoo's tuned CartPole-v1 settings for PPO
CARTPOLE_PPO = dict(
    n_steps=32,
    batch_size=256,
    gae_lambda=0.8,
    gamma=0.98,
    n_epochs=20,
    ent_coef=0.0,
    learning_rate=lambda progress: 1e-3 * progress,
    clip_range=lambda progress: 0.2 * progress,
)
# RL-Zoo's Pendulum-v1 settings for PPO, without gSDE (the policy is categorical after discretization)
PENDULUM_PPO = dict(n_steps=1024, gae_lambda=0.95, gamma=0.9, n_epochs=10, ent_coef=0.0, learning_rate=1e-3, clip_range=0.2)
# Measured here at these seeds (SB3 2.9.2, torch 2.13 CPU, 100k steps, 10 deterministic episodes): SymPPO -94.7,
# PPO on the same bins (alpha=1, beta=0) -94.1; random play scores about -1200. The threshold leaves a margin of about
# 100 for other CPUs and library builds, and still needs a policy that swings the pendulum up and holds it.
PENDULUM_THRESHOLD = -200.0
# docs/paper.rst, "Stock-PPO equivalent": with separate actor/critic networks and ent_coef = 0 SymPPO trains like PPO
# up to clipping and Adam's eps, so on clean rewards it should not trail PPO (measured gap 0.6).
PENDULUM_MAX_GAP = 50.0


def _evaluate(model, env_id: str, seed: int, wrapper_class=None) -> float:
    eval_env = make_vec_env(env_id, n_envs=1, seed=seed, wrapper_class=wrapper_class)
    mean_return, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    return mean_return


# CartPole-v1 caps returns at 500; SymPPO measured 500.0 here at these seeds. 475 is the env's "solved" score.
def test_symppo_solves_cartpole():
    model = SymPPO("MlpPolicy", make_vec_env("CartPole-v1", n_envs=8, seed=0), seed=0, **CARTPOLE_PPO)
    model.learn(100_000)
    assert _evaluate(model, "CartPole-v1", seed=1000) >= 475


def test_syma2c_solves_cartpole():
    model = SymA2C("MlpPolicy", make_vec_env("CartPole-v1", n_envs=8, seed=0), seed=0, ent_coef=0.0)
    model.learn(300_000)
    assert _evaluate(model, "CartPole-v1", seed=1000) >= 475


@pytest.mark.extended
def test_discretized_pendulum_symppo_learns_as_well_as_ppo():
    returns = {}
    for name, kwargs in (("SymPPO", {}), ("PPO on the same bins", dict(alpha=1.0, beta=0.0))):
        env = make_vec_env("Pendulum-v1", n_envs=4, seed=0, wrapper_class=DiscretizeAction)
        model = SymPPO("MlpPolicy", env, seed=0, **PENDULUM_PPO, **kwargs)
        model.learn(100_000)
        returns[name] = _evaluate(model, "Pendulum-v1", seed=1000, wrapper_class=DiscretizeAction)
    assert min(returns.values()) >= PENDULUM_THRESHOLD, returns
    assert returns["SymPPO"] >= returns["PPO on the same bins"] - PENDULUM_MAX_GAP, returns
