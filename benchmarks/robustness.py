"""Hyperparameter robustness: the same K random configurations for PPO, SPPO and its stock-PPO equivalent, noisy rewards.

The paper claims SPPO is more stable across hyperparameters than PPO. This samples K configurations of the
four knobs users touch first (learning rate, clip range, epochs, minibatch size) with a fixed seed, trains
PPO and SymPPO (SymPPO's class defaults alpha=0.5, beta=1, rce_z=-1: docs/paper.rst, "Hyperparameters") with each of
them on noisy-reward envs, evaluates the policy at the end of its budget on the clean env, and reports the share
of configurations whose return reaches the env's success threshold together with the distribution of final returns.
Each configuration is also trained by the stock-PPO equivalent of SymPPO (``ppo_equiv``: SymPPO's gradient with
other rounding), so SPPO against it shows how far one seed moves from rounding alone: the noise floor of the
per-configuration differences.

The search space, the per-env settings and SPPO's coefficients are data: ``benchmarks/robustness.yml``.
Each training is a run of the grid's runner (benchmarks/engine.py): one RL-Zoo training whose YAML entry is
overridden with the configuration and the env's fixed settings below, a trial of the study ``robustness``
(default storage: ``benchmarks/runs/robustness.log``, RL-Zoo's logs in ``benchmarks/runs/robustness-work``, as the
grid keeps its own). ``--workers`` worker processes train them; a rerun skips finished runs.

    python -m benchmarks.robustness                      # K=8, the budgets committed in benchmarks/results/
    python -m benchmarks.robustness --k 32 --workers 4   # a larger sweep
    python -m benchmarks.robustness --report-only        # redraw table and plot from the stored runs

"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "robustness"
SETTINGS = Path(__file__).resolve().parent / "robustness.yml"
FIXED = ("n_envs", "n_steps", "gamma", "gae_lambda", "ent_coef")


@dataclass(frozen=True)
class EnvSetting:
    """What stays fixed per env (rollout shape, discounting, entropy), its default budget and success bar."""

    n_envs: int
    n_steps: int
    gamma: float
    gae_lambda: float
    ent_coef: float
    steps: int
    threshold: float


def load_settings(path: Path = SETTINGS) -> tuple[dict[str, dict[str, Any]], dict[str, EnvSetting], dict[str, float]]:
    """The search space (knob -> ``{"log_uniform": [low, high]}`` or ``{"choice": [...]}``), envs and coefficients."""
    data = yaml.safe_load(path.read_text()) or {}
    where = f"{path.name}:"
    if set(data) != {"search_space", "envs", "symmetric"}:
        raise ValueError(f"{where} needs exactly the sections search_space, envs and symmetric; got {sorted(data)}")
    space = data["search_space"]
    for name, spec in space.items():
        if not _valid_knob(spec):
            raise ValueError(
                f"{where} search_space.{name} is {{choice: [v, ...]}} or {{log_uniform: [low, high]}} "
                f"with 0 < low < high; got {spec!r}"
            )
    fields = set(EnvSetting.__dataclass_fields__)
    envs = {}
    for env, setting in data["envs"].items():
        if not isinstance(setting, dict) or set(setting) != fields:
            raise ValueError(f"{where} envs.{env} needs exactly {sorted(fields)}; got {setting!r}")
        envs[env] = EnvSetting(**setting)
    symmetric = {name: float(value) for name, value in data["symmetric"].items()}
    if set(symmetric) != {"alpha", "beta", "rce_z"}:
        raise ValueError(f"{where} symmetric needs alpha, beta and rce_z; got {sorted(symmetric)}")
    return space, envs, symmetric


def _valid_knob(spec: Any) -> bool:
    if not isinstance(spec, dict) or len(spec) != 1:
        return False
    ((kind, values),) = spec.items()
    if kind == "choice":
        return isinstance(values, list) and len(values) > 0
    return kind == "log_uniform" and isinstance(values, list) and len(values) == 2 and 0 < values[0] < values[1]


SEARCH_SPACE, ENVS, SYMMETRIC = load_settings()
ALGOS = ("ppo", "sppo", "ppo_equiv")


def label(algo: str) -> str:
    """The grid's name for ``algo`` in tables (benchmarks/presets.yml)."""
    from benchmarks.engine import ALGORITHMS

    return ALGORITHMS[algo].label


STUDY = "robustness"


def sample_configs(k: int, seed: int, space: dict[str, dict[str, Any]] = SEARCH_SPACE) -> list[dict[str, Any]]:
    """K configurations drawn with their own generator, so every algorithm (and every rerun) sees the same ones."""
    rng = np.random.default_rng(seed)
    configs = []
    for _ in range(k):
        config: dict[str, Any] = {}
        for name, spec in space.items():
            if "log_uniform" in spec:
                low, high = spec["log_uniform"]
                config[name] = float(np.exp(rng.uniform(np.log(low), np.log(high))))
            else:
                values = spec["choice"]
                config[name] = type(values[0])(rng.choice(values))
        configs.append(config)
    return configs


def describe_space(space: dict[str, dict[str, Any]] = SEARCH_SPACE) -> str:
    """``"learning_rate log-uniform in [0.0001, 0.003], clip_range in (0.1, 0.2), ..."``"""
    parts = []
    for name, spec in space.items():
        if "log_uniform" in spec:
            parts.append(f"{name} log-uniform in [{spec['log_uniform'][0]:g}, {spec['log_uniform'][1]:g}]")
        else:
            parts.append(f"{name} in ({', '.join(f'{value:g}' for value in spec['choice'])})")
    return ", ".join(parts)


def plan_runs(envs: list[str], configs: list[dict[str, Any]], steps: dict[str, int], noise_p: float, seed: int, episodes: int):
    """The grid runs of the sweep: per env, configuration and algorithm one training, seed ``seed + index``."""
    from benchmarks.engine import Run, python_literal

    runs = []
    for env in envs:
        setting = ENVS[env]
        fixed = {name: getattr(setting, name) for name in FIXED}
        for index, config in enumerate(configs):
            for algo in ALGOS:
                values = _values(algo, {**fixed, **config})
                overrides = tuple((name, python_literal(value)) for name, value in sorted(values.items()))
                noise = f"flip:{noise_p}" if noise_p > 0 else "clean"
                runs.append(Run(algo, env, noise, seed + index, steps[env], 1, episodes, overrides=overrides))
    return runs


def _values(algo: str, shared: dict[str, Any]) -> dict[str, Any]:
    """The YAML overrides of one algorithm: the shared values, with SymPPO's coefficients for SPPO and for its
    stock-PPO equivalent (the grid converts those, and the entry's knobs, to stock PPO's)."""
    return {**shared, **SYMMETRIC} if algo in ("sppo", "ppo_equiv") else dict(shared)


def record_of(result: dict[str, Any], index: int, config: dict[str, Any]) -> dict[str, Any]:
    """A finished run as the tables want it."""
    return {
        "env": result["env"],
        "algo": result["algo"],
        "config_index": index,
        "config": config,
        "mean_return": result["final_return"],
        "returns": result["returns"][-1],
        "code": result["code"],
    }


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
                f"| {env} (>= {threshold:g}) | {label(algo)} | {len(values)} | {reached}/{len(values)} "
                f"({100 * reached / len(values):.0f}%) | {q50:.1f} | {np.mean(values):.1f} | {q25:.1f} - {q75:.1f} "
                f"| {min(values):.1f} | {max(values):.1f} |"
            )
    lines += ["", *_differences(by_env)]
    configs = {record["config_index"]: record["config"] for record in records}
    lines += [
        "",
        "Final clean return per configuration (SPPO - PPO > 0: SPPO better; SPPO - equiv.: rounding alone):",
        "",
    ]
    knobs = list(next(iter(configs.values())))
    header = f"| # | {' | '.join(knobs)} |"
    rule = "|---|" + "---|" * len(knobs)
    for env in by_env:
        header += f" {env} PPO | {env} SPPO | {env} equiv. | SPPO - PPO | SPPO - equiv. |"
        rule += "---|---|---|---|---|"
    lines += [header, rule]
    for index in sorted(configs):
        config = configs[index]
        row = f"| {index} | {' | '.join(f'{config[knob]:.3g}' for knob in knobs)} |"
        for per_algo in by_env.values():
            ppo, sppo, equiv = (per_algo.get(algo, {}).get(index, math.nan) for algo in ALGOS)
            row += f" {ppo:.1f} | {sppo:.1f} | {equiv:.1f} | {sppo - ppo:+.1f} | {sppo - equiv:+.1f} |"
        lines.append(row)
    return "\n".join(lines), returns


def _differences(by_env: dict[str, dict[str, dict[int, float]]]) -> list[str]:
    """Per env, SPPO's per-configuration differences from PPO beside those from its equivalent (the noise floor)."""
    lines = [
        "| env | SPPO against | configs | SPPO higher | equal | median abs. difference | largest abs. difference |",
        "|---|---|---|---|---|---|---|",
    ]
    for env, per_algo in by_env.items():
        sppo = per_algo.get("sppo", {})
        for other in ("ppo", "ppo_equiv"):
            shared = sorted(set(sppo) & set(per_algo.get(other, {})))
            if not shared:
                continue
            differences = np.array([sppo[index] - per_algo[other][index] for index in shared])
            lines.append(
                f"| {env} | {label(other)} | {len(shared)} | {int((differences > 0).sum())} "
                f"| {int((differences == 0).sum())} | {np.median(np.abs(differences)):.1f} "
                f"| {np.abs(differences).max():.1f} |"
            )
    return lines


def plot(records: list[dict[str, Any]], thresholds: dict[str, float], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({record["env"] for record in records})
    figure, axes = plt.subplots(1, len(envs), figsize=(5 * len(envs), 4), squeeze=False)
    for axis, env in zip(axes[0], envs, strict=True):
        per_algo: dict[str, dict[int, float]] = {}
        for record in records:
            if record["env"] == env:
                per_algo.setdefault(record["algo"], {})[record["config_index"]] = record["mean_return"]
        for index in sorted(set.intersection(*(set(per_algo.get(algo, {})) for algo in ALGOS))):
            axis.plot(range(len(ALGOS)), [per_algo[algo][index] for algo in ALGOS], color="grey", alpha=0.4, lw=1)
        for position, algo in enumerate(ALGOS):
            values = list(per_algo.get(algo, {}).values())
            if values:
                axis.boxplot(values, positions=[position], widths=0.35, showfliers=False)
                axis.scatter([position] * len(values), values, s=14, zorder=3)
        axis.axhline(thresholds[env], ls="--", color="tab:red", lw=1, label="success threshold")
        axis.set_xticks(range(len(ALGOS)), [label(algo).replace(" (", "\n(") for algo in ALGOS])
        axis.set_title(env)
        axis.set_ylabel("final clean return (one run per config)")
        axis.legend(loc="lower right", fontsize=8)
    figure.suptitle("\n".join(textwrap.wrap(title, 60 * len(envs))), fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(out: Path, records: list[dict[str, Any]], command: str, args: argparse.Namespace) -> None:
    from benchmarks.report import code_version_name, commits_of
    from sb3_symmetric.equivalence import policy_weight

    tables, _ = summarize(records, args.threshold)
    budget = ", ".join(f"{env} {steps} steps" for env, steps in args.steps.items())
    # every record is at the current code (the planned runs' keys name it), so one version
    text = (
        "# Hyperparameter robustness: PPO vs SPPO under reward-flip noise\n\n"
        f"Made by: `{command}`\n\n"
        f"Code version {code_version_name(records[0]['code'])}; runs queued at: {commits_of(records)}.\n\n"
        f"K={args.k} configurations (seed {args.seed}, benchmarks/robustness.yml): {describe_space()}. "
        f"Training rewards flipped (r <- 1 - r) with p={args.noise_p}; budgets: {budget}; "
        f"one training seed per configuration (the same for every algorithm); "
        f"the policy at the end of the budget evaluated deterministically on {args.eval_episodes} clean episodes "
        "(RL-Zoo's evaluation). "
        f"SPPO uses {', '.join(f'{name}={value:g}' for name, value in SYMMETRIC.items())}; everything else is shared. "
        "PPO (SPPO-equivalent) is stock PPO with vf_coef, ent_coef, max_grad_norm and Adam's eps divided by "
        f"w = alpha + beta*|rce_z| = {policy_weight(**SYMMETRIC):g}: SPPO's gradient with other rounding, "
        "so SPPO against it is the noise floor "
        "of a per-configuration difference.\n\n"
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


def main(argv: list[str] | None = None) -> int:
    from benchmarks.engine import (
        RUNS,
        ConfigError,
        code_version,
        default_storage,
        enqueue,
        finished_runs,
        open_study,
        run_key,
        run_workers,
    )

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
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--storage", help="the sweep's study (default: benchmarks/runs/robustness.log; PostgreSQL for many machines)"
    )
    parser.add_argument(
        "--work-dir", type=Path, help="local folder for the runs' RL-Zoo logs (default: benchmarks/runs/robustness-work)"
    )
    parser.add_argument("--report-only", action="store_true", help="only redraw the table and plot")
    args = parser.parse_args(argv)
    args.steps = {
        env: int(steps)
        for env, steps in parse_per_env("--steps", args.steps, {env: s.steps for env, s in ENVS.items()}).items()
    }
    args.steps = {env: steps for env, steps in args.steps.items() if env in args.envs}
    args.threshold = parse_per_env("--threshold", args.threshold, {env: s.threshold for env, s in ENVS.items()})
    given = sys.argv[1:] if argv is None else list(argv)
    command = shlex.join(["python", "-m", "benchmarks.robustness", *given])
    if args.k < 1 or args.workers < 1:
        parser.error("--k and --workers must be at least 1")

    args.out.mkdir(parents=True, exist_ok=True)
    storage = args.storage or default_storage(RUNS, STUDY, create_folder=True)
    work_dir = (args.work_dir or RUNS / f"{STUDY}-work").resolve()
    configs = sample_configs(args.k, args.seed)
    code = code_version()
    try:
        planned = plan_runs(args.envs, configs, args.steps, args.noise_p, args.seed, args.eval_episodes)
        study = open_study(storage, STUDY, create=True)
        if not args.report_only:
            keys, _ = enqueue(study, planned, code)
            status = run_workers(storage, STUDY, args.workers, work_dir, keys=keys, resume_hint=command)
            if status != 0:
                return status
    except ConfigError as error:
        parser.error(str(error))
    index_of = {run_key(run, code): (k // len(ALGOS)) % len(configs) for k, run in enumerate(planned)}
    records = [
        record_of(result, index_of[result["key"]], configs[index_of[result["key"]]])
        for result in finished_runs(study)
        if result["key"] in index_of
    ]
    if records:
        write_report(args.out, records, command, args)
        print((args.out / "robustness.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
