"""Train SymPPO next to PPO on CartPole-v1 and print both evaluation returns: ``python -m sb3_symmetric.demo``."""

from __future__ import annotations

import argparse
import time
from typing import Any

from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_symmetric import SymPPO


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--timesteps", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    hyperparams: dict[str, Any] = dict(n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20, learning_rate=1e-3)
    runs: list[tuple[str, type[PPO], dict[str, Any]]] = [
        ("PPO", PPO, {}),
        ("SymPPO", SymPPO, dict(alpha=0.5, beta=1.0, rce_z=-1.0)),
    ]
    for name, algo, extra in runs:
        start = time.perf_counter()
        env = make_vec_env(args.env, n_envs=8, seed=args.seed)
        model = algo("MlpPolicy", env, seed=args.seed, **hyperparams, **extra)
        model.learn(args.timesteps, progress_bar=True)
        eval_env = make_vec_env(args.env, n_envs=1, seed=args.seed + 1000)
        mean_return, std_return = evaluate_policy(model, eval_env, n_eval_episodes=10)
        print(
            f"{name:7s} {args.env}: mean return {mean_return:7.1f} +/- {std_return:5.1f} ({time.perf_counter() - start:.0f} s)"
        )


if __name__ == "__main__":
    main()
