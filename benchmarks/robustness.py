"""Hyperparameter robustness: the same K random configurations for PPO and SPPO under reward-flip noise.

The paper claims SPPO is more stable across hyperparameters than PPO. This samples K configurations of the
four knobs users touch first (learning rate, clip range, epochs, minibatch size) with a fixed seed, trains
PPO and SymPPO (class defaults alpha=0.5, beta=1, rce_z=-1: paper.md section 5) with each of them on
noisy-reward envs, evaluates the final policy on the clean env, and reports the share of configurations
whose return reaches the env's success threshold together with the distribution of final returns.

    python -m benchmarks.robustness                      # K=8, the budgets committed in benchmarks/results/
    python -m benchmarks.robustness --k 32 --workers 4   # a larger sweep
    python -m benchmarks.robustness --report-only        # redraw table and plot from the stored runs

Every finished run is appended to ``runs.jsonl`` in the output folder; a rerun skips the runs already there.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "robustness"

# Search space (RL-Zoo's PPO ranges, restricted to minibatch sizes that divide every rollout below).
LEARNING_RATE = (1e-4, 3e-3)
CLIP_RANGES = (0.1, 0.2, 0.3, 0.4)
EPOCHS = (1, 5, 10, 20)
BATCH_SIZES = (32, 64, 128, 256)


@dataclass(frozen=True)
class EnvSetting:
    """What stays fixed per env: rollout shape and discounting (from RL-Zoo's ppo.yml), and the success bar."""

    n_envs: int
    n_steps: int
    gamma: float
    gae_lambda: float
    ent_coef: float
    threshold: float


ENVS = {
    # threshold: the env's registered reward_threshold ("solved").
    "CartPole-v1": EnvSetting(n_envs=8, n_steps=32, gamma=0.98, gae_lambda=0.8, ent_coef=0.0, threshold=475.0),
    "LunarLander-v3": EnvSetting(n_envs=8, n_steps=128, gamma=0.999, gae_lambda=0.98, ent_coef=0.01, threshold=200.0),
}
DEFAULT_STEPS: dict[str, float] = {"CartPole-v1": 30_000, "LunarLander-v3": 60_000}
ALGOS = ("ppo", "sppo")


def sample_configs(k: int, seed: int) -> list[dict[str, Any]]:
    """K configurations drawn with their own generator, so PPO and SPPO (and every rerun) see the same ones."""
    rng = np.random.default_rng(seed)
    configs = []
    for _ in range(k):
        low, high = np.log(LEARNING_RATE[0]), np.log(LEARNING_RATE[1])
        configs.append(
            {
                "learning_rate": float(np.exp(rng.uniform(low, high))),
                "clip_range": float(rng.choice(CLIP_RANGES)),
                "n_epochs": int(rng.choice(EPOCHS)),
                "batch_size": int(rng.choice(BATCH_SIZES)),
            }
        )
    return configs


@dataclass(frozen=True)
class Run:
    env: str
    algo: str
    config_index: int
    config: tuple[tuple[str, Any], ...]
    steps: int
    noise_p: float
    seed: int
    eval_episodes: int

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def train_and_evaluate(run: Run) -> dict[str, Any]:
    """Train one (algo, config) on the noisy env and return the clean mean return of the final policy."""
    import torch as th
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    from sb3_symmetric import SymPPO
    from sb3_symmetric.noise import RewardNoiseCallback

    th.set_num_threads(1)
    setting = ENVS[run.env]
    env = make_vec_env(run.env, n_envs=setting.n_envs, seed=run.seed)
    eval_env = make_vec_env(run.env, n_envs=1, seed=run.seed + 10_000)
    algo = PPO if run.algo == "ppo" else SymPPO
    model = algo(
        "MlpPolicy",
        env,
        n_steps=setting.n_steps,
        gamma=setting.gamma,
        gae_lambda=setting.gae_lambda,
        ent_coef=setting.ent_coef,
        seed=run.seed,
        device="cpu",
        **dict(run.config),
    )
    model.learn(run.steps, callback=RewardNoiseCallback("flip", p=run.noise_p) if run.noise_p > 0 else None)
    episode_returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=run.eval_episodes, return_episode_rewards=True)
    env.close()
    eval_env.close()
    returns = [float(value) for value in episode_returns]  # type: ignore[union-attr]
    return {**asdict(run), "config": dict(run.config), "mean_return": float(np.mean(returns)), "returns": returns}


def run_of(record: dict[str, Any]) -> Run:
    """The run a stored record belongs to."""
    fields = {name: record[name] for name in Run.__dataclass_fields__}
    return Run(**{**fields, "config": tuple(record["config"].items())})


def load_runs(path: Path) -> dict[str, dict[str, Any]]:
    runs = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                runs[run_of(record).key()] = record
    return runs


def summarize(records: list[dict[str, Any]], thresholds: dict[str, float]) -> tuple[str, dict[str, dict[str, list[float]]]]:
    """Markdown tables (summary per env and algo, then returns per configuration) and the returns per env/algo."""
    by_env: dict[str, dict[str, dict[int, float]]] = {}
    for record in records:
        by_env.setdefault(record["env"], {}).setdefault(record["algo"], {})[record["config_index"]] = record["mean_return"]
    lines = [
        "| env | algo | configs | reach threshold | median return | mean return | 25%-75% | min | max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    returns: dict[str, dict[str, list[float]]] = {}
    for env, per_algo in by_env.items():
        threshold = thresholds[env]
        for algo in ALGOS:
            values = [per_algo.get(algo, {})[index] for index in sorted(per_algo.get(algo, {}))]
            returns.setdefault(env, {})[algo] = values
            if not values:
                continue
            reached = sum(value >= threshold for value in values)
            q25, q50, q75 = np.percentile(values, [25, 50, 75])
            lines.append(
                f"| {env} (>= {threshold:g}) | {algo.upper()} | {len(values)} | {reached}/{len(values)} "
                f"({100 * reached / len(values):.0f}%) | {q50:.1f} | {np.mean(values):.1f} | {q25:.1f} - {q75:.1f} "
                f"| {min(values):.1f} | {max(values):.1f} |"
            )
    configs = {record["config_index"]: record["config"] for record in records}
    lines += ["", "Final clean return per configuration (SPPO - PPO > 0: SPPO better):", ""]
    header = "| # | learning_rate | clip_range | n_epochs | batch_size |"
    rule = "|---|---|---|---|---|"
    for env in by_env:
        header += f" {env} PPO | {env} SPPO | diff |"
        rule += "---|---|---|"
    lines += [header, rule]
    for index in sorted(configs):
        config = configs[index]
        row = (
            f"| {index} | {config['learning_rate']:.2e} | {config['clip_range']:g} | {config['n_epochs']} "
            f"| {config['batch_size']} |"
        )
        for per_algo in by_env.values():
            ppo, sppo = per_algo.get("ppo", {}).get(index, math.nan), per_algo.get("sppo", {}).get(index, math.nan)
            row += f" {ppo:.1f} | {sppo:.1f} | {sppo - ppo:+.1f} |"
        lines.append(row)
    return "\n".join(lines), returns


def plot(records: list[dict[str, Any]], thresholds: dict[str, float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({record["env"] for record in records})
    figure, axes = plt.subplots(1, len(envs), figsize=(4.5 * len(envs), 4), squeeze=False)
    for axis, env in zip(axes[0], envs, strict=True):
        per_algo: dict[str, dict[int, float]] = {}
        for record in records:
            if record["env"] == env:
                per_algo.setdefault(record["algo"], {})[record["config_index"]] = record["mean_return"]
        for index in sorted(set(per_algo.get("ppo", {})) & set(per_algo.get("sppo", {}))):
            axis.plot([0, 1], [per_algo["ppo"][index], per_algo["sppo"][index]], color="grey", alpha=0.4, lw=1)
        for position, algo in enumerate(ALGOS):
            values = list(per_algo.get(algo, {}).values())
            if values:
                axis.boxplot(values, positions=[position], widths=0.35, showfliers=False)
                axis.scatter([position] * len(values), values, s=14, zorder=3)
        axis.axhline(thresholds[env], ls="--", color="tab:red", lw=1, label="success threshold")
        axis.set_xticks([0, 1], [algo.upper() for algo in ALGOS])
        axis.set_title(env)
        axis.set_ylabel("final clean return (one run per config)")
        axis.legend(loc="lower right", fontsize=8)
    figure.suptitle("\n".join(textwrap.wrap(title, 60 * len(envs))), fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(out: Path, records: list[dict[str, Any]], command: str, args: argparse.Namespace) -> None:
    tables, _ = summarize(records, args.threshold)
    budget = ", ".join(f"{env} {steps} steps" for env, steps in args.steps.items())
    text = (
        "# Hyperparameter robustness: PPO vs SPPO under reward-flip noise\n\n"
        f"Made by: `{command}`\n\n"
        f"K={args.k} configurations (seed {args.seed}): learning rate log-uniform in {LEARNING_RATE}, "
        f"clip range in {CLIP_RANGES}, epochs in {EPOCHS}, minibatch in {BATCH_SIZES}. "
        f"Training rewards flipped (r <- 1 - r) with p={args.noise_p}; budgets: {budget}; "
        f"one training seed per configuration (the same for PPO and SPPO); "
        f"final policy evaluated deterministically on {args.eval_episodes} clean episodes. "
        "SPPO uses SymPPO's defaults alpha=0.5, beta=1, rce_z=-1; everything else is shared.\n\n"
        f"{tables}\n\n![robustness](robustness.png)\n"
    )
    (out / "robustness.md").write_text(text)
    plot(records, args.threshold, out / "robustness.png", command)


def parse_per_env(option: str, values: list[str], defaults: dict[str, float]) -> dict[str, float]:
    parsed = dict(defaults)
    for value in values:
        env, _, number = value.partition("=")
        try:
            parsed[env] = float(number)
        except ValueError:
            env = ""
        if env not in ENVS:
            raise SystemExit(f"{option} takes ENV=NUMBER with ENV in {sorted(ENVS)}; got {value!r}")
    return parsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8, help="number of random configurations")
    parser.add_argument("--seed", type=int, default=0, help="seed of the configurations and of the training runs")
    parser.add_argument("--envs", nargs="+", default=list(ENVS), choices=list(ENVS))
    parser.add_argument("--steps", nargs="*", default=[], help="training budget per env, e.g. CartPole-v1=30000")
    parser.add_argument(
        "--threshold", nargs="*", default=[], help="success threshold per env (default: 'solved'), e.g. LunarLander-v3=0"
    )
    parser.add_argument("--noise-p", type=float, default=0.1, help="reward flip probability (paper: 0.1)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1, help="training processes")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--report-only", action="store_true", help="only redraw the table and plot")
    args = parser.parse_args(argv)
    args.steps = {env: int(steps) for env, steps in parse_per_env("--steps", args.steps, DEFAULT_STEPS).items()}
    args.steps = {env: steps for env, steps in args.steps.items() if env in args.envs}
    args.threshold = parse_per_env("--threshold", args.threshold, {env: s.threshold for env, s in ENVS.items()})
    command = shlex.join(["python", "-m", "benchmarks.robustness", *(sys.argv[1:] if argv is None else argv)])

    args.out.mkdir(parents=True, exist_ok=True)
    runs_file = args.out / "runs.jsonl"
    done = load_runs(runs_file)
    configs = sample_configs(args.k, args.seed)
    planned = [
        Run(env, algo, index, tuple(config.items()), args.steps[env], args.noise_p, args.seed + index, args.eval_episodes)
        for env in args.envs
        for index, config in enumerate(configs)
        for algo in ALGOS
    ]
    todo = [run for run in planned if run.key() not in done]
    if todo and not args.report_only:
        from tqdm import tqdm

        with (
            ProcessPoolExecutor(max_workers=args.workers) as pool,
            tqdm(total=len(planned), initial=len(planned) - len(todo), desc="runs") as progress,
        ):
            futures = [pool.submit(train_and_evaluate, run) for run in todo]
            for future in as_completed(futures):
                record = future.result()
                with runs_file.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
                done[run_of(record).key()] = record
                progress.update()
    planned_keys = {run.key() for run in planned}
    records = [record for key, record in done.items() if key in planned_keys]
    if records:
        write_report(args.out, records, command, args)
        print((args.out / "robustness.md").read_text())


if __name__ == "__main__":
    main()
