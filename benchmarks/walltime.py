"""Project the wall time of a whole grid preset from short timing runs on the machine that will run it.

The timing work runs in ``--workers`` worker processes at once, on the device of the grid, so it contends
for the GPU and the cores as the grid will:

- per (env, algorithm): two real grid runs (same runner, RL-Zoo command and YAML entry) of ``--steps``
  training timesteps, each ending with one evaluation episode; their difference is the training cost per
  timestep, the rest the fixed cost of a run (its process start, imports, env and model creation, saving);
- per env: the preset's evaluation (``evaluate_policy`` on RL-Zoo's own evaluation env, ``eval_episodes``
  episodes of a fresh model), timed in-process: the cost of an evaluation step and the length of an
  evaluation episode of an untrained agent.

A preset run then costs ``fixed + trained steps x train cost + n_evals x eval_episodes x L x eval step cost``
and the grid ``sum(runs) / workers`` (or its longest run, if that is longer). ``L``, the mean evaluation
episode length, is the unknown: it changes as agents learn (an Atari game lasts longer when played well), so
the projection uses the untrained one and also prints how much every 1000 steps of ``L`` add.

    python -m benchmarks.walltime --preset atari-paper --device cuda --workers 8 --steps 10000 50000
    python -m benchmarks.walltime --preset pendulum-10seeds --workers 2
    python -m benchmarks.walltime --preset pendulum-10seeds --workers 2 --lengths-from benchmarks/runs/pendulum-10seeds.log

Finished timing work is kept (the timing runs in the study ``<runs-dir>/timing.log``, evaluations in
``eval-*.json``) and skipped on a rerun; the projection goes
to ``--out`` (markdown, and the numbers as JSON beside it).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import multiprocessing
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks.engine import (
    PRESETS,
    ROOT,
    ConfigError,
    Preset,
    Run,
    duration,
    enqueue,
    finished_runs,
    make_runs,
    open_study,
    run_workers,
    zoo_call,
    zoo_entry,
)

STUDY = "walltime"


def rollout_size(run: Run) -> int:
    """Timesteps per rollout of a run's YAML entry (``n_steps x n_envs``): SB3 trains whole rollouts."""
    from rl_zoo3.utils import ALGOS

    from sb3_symmetric import zoo

    zoo.register()
    call = zoo_call(run)
    entry = call.conf_entry or zoo_entry(call.zoo_algo, run.env, call.conf_file)
    n_steps = entry.get("n_steps", inspect.signature(ALGOS[call.zoo_algo]).parameters["n_steps"].default)
    return int(n_steps) * int(entry.get("n_envs", 1))


def trained_steps(run: Run, budget: int) -> int:
    """Timesteps SB3 actually trains for ``learn(budget)``: whole rollouts, so rounded up."""
    size = rollout_size(run)
    return math.ceil(budget / size) * size


@dataclass(frozen=True)
class Plan:
    """The timing work of a preset: two short runs per (env, algorithm), one evaluation timing per env."""

    short: dict[tuple[str, str], Run]
    long: dict[tuple[str, str], Run]
    eval_runs: dict[str, Run]
    eval_episodes: int


def timing_plan(preset: Preset, steps: tuple[int, int], device: str) -> Plan:
    """Seed 0 of every (env, algorithm) cell with the env's first noise setting, at the two timing budgets."""
    first_noise = {spec.env: spec.noises[0] for spec in preset.envs}
    cells = {
        (run.env, run.algo): run for run in make_runs(preset, seeds=1, device=device) if run.noise == first_noise[run.env]
    }
    for run in cells.values():
        if trained_steps(run, steps[0]) >= trained_steps(run, steps[1]):
            raise ValueError(
                f"--steps {steps[0]} {steps[1]}: {run.algo} on {run.env} trains whole rollouts of {rollout_size(run)} "
                f"steps, so both budgets give {trained_steps(run, steps[0])} steps; make LONG at least one rollout longer."
            )

    def timing_run(run: Run, budget: int) -> Run:
        return replace(run, budget=budget, n_evals=1, eval_episodes=1)

    eval_runs: dict[str, Run] = {}
    for (env, _), run in cells.items():
        eval_runs.setdefault(env, run)
    return Plan(
        short={key: timing_run(run, steps[0]) for key, run in cells.items()},
        long={key: timing_run(run, steps[1]) for key, run in cells.items()},
        eval_runs=eval_runs,
        eval_episodes=max(preset.eval_episodes, 1),
    )


def eval_file(root: Path, env: str) -> Path:
    return root / f"eval-{env.replace('/', '_')}.json"


def _warm_up() -> None:
    """Worker initializer: pay the imports once per worker, as the grid's workers do."""
    import rl_zoo3.train  # noqa: F401

    import sb3_symmetric.zoo  # noqa: F401


def time_evaluation(run: Run, episodes: int, out: Path) -> tuple[str, float, str | None]:
    """Time RL-Zoo's evaluation of a fresh model of ``run`` (its own eval env and determinism) over ``episodes``."""
    import torch as th
    from rl_zoo3.exp_manager import ExperimentManager
    from stable_baselines3.common.evaluation import evaluate_policy

    from sb3_symmetric import zoo

    start = time.perf_counter()
    try:
        zoo.register()
        th.set_num_threads(1)
        call = zoo_call(run)
        params = {key: value for key, value in call.params.items() if key != "callback"}  # noise: training only
        folder = out.with_suffix("")
        config = None
        if call.conf_entry is not None:
            folder.mkdir(parents=True, exist_ok=True)
            config = str(folder / "conf.yml")
            Path(config).write_text(yaml.safe_dump({run.env: call.conf_entry}))
        elif call.conf_file is not None:
            config = str(call.conf_file)
        flags: dict[str, Any] = dict(n_timesteps=0, eval_freq=-1, seed=0, verbose=0, hyperparams=params, config=config)
        experiment = ExperimentManager(argparse.Namespace(), call.zoo_algo, run.env, str(folder), device=run.device, **flags)
        setup = experiment.setup_experiment()
        assert setup is not None  # None only when optimizing hyperparameters
        model = setup[0]
        eval_env = experiment.create_envs(1, eval_env=True, no_log=True)
        deterministic = experiment.deterministic_eval
        evaluate_policy(model, eval_env, n_eval_episodes=1, deterministic=deterministic)  # warm-up (cuDNN, caches)
        clock = time.perf_counter()
        _, lengths = evaluate_policy(
            model, eval_env, n_eval_episodes=episodes, deterministic=deterministic, return_episode_rewards=True
        )
        seconds = time.perf_counter() - clock
        partial = out.with_suffix(".partial")  # an interrupted write must not look finished
        partial.write_text(json.dumps({"env": run.env, "seconds": seconds, "ep_lengths": [int(n) for n in lengths]}))  # type: ignore[union-attr]
        os.replace(partial, out)
        eval_env.close()
        if model.env is not None:
            model.env.close()
        return f"evaluation of {run.env}", time.perf_counter() - start, None
    except BaseException:
        return f"evaluation of {run.env}", time.perf_counter() - start, traceback.format_exc(limit=4)


def run_timing(plan: Plan, root: Path, workers: int) -> list[tuple[str, str]]:
    """The unfinished evaluation timings, then the timing runs through the grid's runner; returns the failures."""
    failures: list[tuple[str, str]] = []
    tasks = [
        (run, plan.eval_episodes, eval_file(root, env))
        for env, run in plan.eval_runs.items()
        if not eval_file(root, env).exists()
    ]
    if tasks:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_warm_up) as pool:
            for future in as_completed([pool.submit(time_evaluation, *task) for task in tasks]):
                name, _, error = future.result()
                if error is not None:
                    failures.append((name, error))
                    print(f"FAILED {name}:\n{error}", file=sys.stderr)
    root.mkdir(parents=True, exist_ok=True)
    storage = str(root / "timing.log")
    study = open_study(storage, STUDY, create=True)
    keys, _ = enqueue(study, [*plan.short.values(), *plan.long.values()])
    hint = f"python -m benchmarks.walltime {' '.join(sys.argv[1:])}"
    if run_workers(storage, STUDY, workers, root / "work", keys=keys, resume_hint=hint) != 0:
        failures.append(("timing runs", f"see {root / 'work' / 'workers'}"))
    return failures


def read_timings(root: Path) -> dict[Run, tuple[float, int]]:
    """Wall seconds and evaluation steps of every finished timing run, by run."""
    study = open_study(str(root / "timing.log"), STUDY, create=False)
    timings = {}
    for record in finished_runs(study):
        run = Run.from_dict({name: record[name] for name in Run.__dataclass_fields__})
        timings[run] = (float(record["wall_s"]), int(np.sum(record["ep_lengths"])))
    return timings


@dataclass(frozen=True)
class CellCost:
    env: str
    algo: str
    fixed_s: float
    train_s_per_step: float
    eval_s_per_step: float
    eval_episode_length: float


def fit_costs(plan: Plan, root: Path, timings: dict[Run, tuple[float, int]]) -> list[CellCost]:
    """Per-cell costs: evaluation from the env's timed evaluation, training from the two runs minus their evaluations."""
    eval_cost: dict[str, tuple[float, float]] = {}
    for env in plan.eval_runs:
        timed = json.loads(eval_file(root, env).read_text())
        lengths = timed["ep_lengths"]
        eval_cost[env] = (timed["seconds"] / max(sum(lengths), 1), sum(lengths) / len(lengths))
    costs = []
    for key, short in plan.short.items():
        long = plan.long[key]
        per_eval_step, length = eval_cost[key[0]]
        (wall_s, evals_s), (wall_l, evals_l) = timings[short], timings[long]
        n_s, n_l = trained_steps(short, short.budget), trained_steps(long, long.budget)
        train_s, train_l = wall_s - evals_s * per_eval_step, wall_l - evals_l * per_eval_step
        per_step = max((train_l - train_s) / (n_l - n_s), 0.0)
        fixed = max(train_s - n_s * per_step, 0.0)
        costs.append(CellCost(key[0], key[1], fixed, per_step, per_eval_step, length))
    return costs


def grid_episode_lengths(records: list[dict]) -> dict[str, float]:
    """Mean evaluation episode length per env over every evaluation of a grid's finished runs."""
    per_env: dict[str, list[float]] = {}
    for record in records:
        per_env.setdefault(record["env"], []).append(float(np.mean(record["ep_lengths"])))
    return {env: float(np.mean(values)) for env, values in per_env.items()}


def project(preset: Preset, costs: list[CellCost], workers: int) -> dict:
    """Projected wall time of every run of the preset (all seeds and noise settings) and of the whole grid."""
    by_cell = {(cost.env, cost.algo): cost for cost in costs}
    totals = {"runs": 0, "total_run_s": 0.0, "train_s": 0.0, "eval_s": 0.0, "eval_s_per_length_step": 0.0}
    longest = 0.0
    for run in make_runs(preset):
        cost = by_cell[(run.env, run.algo)]
        # eval_s is linear in the evaluation episode length: keep its slope for the sensitivity line
        eval_per_length_step = cost.eval_s_per_step * run.n_evals * run.eval_episodes
        train = cost.train_s_per_step * trained_steps(run, run.budget)
        evals = eval_per_length_step * cost.eval_episode_length
        seconds = cost.fixed_s + train + evals
        totals["runs"] += 1
        totals["total_run_s"] += seconds
        totals["train_s"] += train
        totals["eval_s"] += evals
        totals["eval_s_per_length_step"] += eval_per_length_step
        longest = max(longest, seconds)
    return {
        **totals,
        "longest_run_s": longest,
        "grid_wall_s": max(totals["total_run_s"] / workers, longest),
        "grid_wall_s_per_1000_length_steps": 1000.0 * totals["eval_s_per_length_step"] / workers,
    }


def report(preset_name: str, projection: dict, costs: list[CellCost], args: argparse.Namespace, device_name: str) -> str:
    """The projection as markdown, with the command that made it."""
    lengths_source = (
        f"the mean over every evaluation of the runs in {args.lengths_from}"
        if args.lengths_from
        else "barely trained agents, measured by the timed evaluation"
    )
    lines = [
        f"# Projected wall time: `{preset_name}` on {device_name}, {args.workers} workers",
        "",
        f"Command: `python -m benchmarks.walltime {' '.join(args.argv)}` ({time.strftime('%Y-%m-%d')}).",
        f"Timing: runs of {args.steps[0]} and {args.steps[1]} training steps per (env, algorithm), seed 0, and one "
        f"timed evaluation per env, {args.workers} at a time in grid workers, on the device the grid will use.",
        "",
        "| env | algorithm | fixed s per run | train ms per step | eval ms per step | eval episode length |",
        "|---|---|---|---|---|---|",
    ]
    for cost in costs:
        lines.append(
            f"| {cost.env} | {cost.algo} | {cost.fixed_s:.1f} | {1e3 * cost.train_s_per_step:.3f} | "
            f"{1e3 * cost.eval_s_per_step:.3f} | {cost.eval_episode_length:.0f} |"
        )
    noisy = [f"{cost.algo} on {cost.env}" for cost in costs if cost.train_s_per_step == 0]
    if noisy:
        lines += [
            "",
            f"Too noisy to fit (training cost clamped at 0): {', '.join(noisy)}. Rerun with a larger LONG `--steps`.",
        ]
    lines += [
        "",
        f"Preset: {projection['runs']} runs; in all {duration(projection['train_s'])} of training and "
        f"{duration(projection['eval_s'])} of evaluation; the longest run {duration(projection['longest_run_s'])}.",
        "",
        f"**Projected grid wall time with {args.workers} workers: {duration(projection['grid_wall_s'])}**, "
        f"with the evaluation episode lengths above ({lengths_source}). Every 1000 steps of mean evaluation "
        f"episode length add {duration(projection['grid_wall_s_per_1000_length_steps'])}: agents that play longer "
        f"episodes once trained make this a lower estimate.",
    ]
    return "\n".join(lines) + "\n"


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        import torch as th

        return f"{th.cuda.get_device_name(0)} ({os.cpu_count()} CPU cores)"
    return f"CPU ({os.cpu_count()} cores)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel runs, as the grid will use")
    parser.add_argument("--steps", type=int, nargs=2, default=(4096, 32768), metavar=("SHORT", "LONG"))
    parser.add_argument("--runs-dir", type=Path, help="where the timing runs go (default benchmarks/runs/walltime/<preset>)")
    parser.add_argument("--out", type=Path, help="markdown projection (default <runs-dir>/projection.md)")
    parser.add_argument(
        "--lengths-from",
        metavar="GRID_STORAGE",
        help="price evaluation with the mean evaluation episode length per env of a grid's finished runs (its storage)",
    )
    parser.add_argument("--lengths-study", help="study name in --lengths-from (default: the preset's name)")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if not 0 < args.steps[0] < args.steps[1]:
        parser.error("--steps needs SHORT < LONG, both > 0")

    preset = PRESETS[args.preset]
    root = (args.runs_dir or ROOT / "benchmarks" / "runs" / "walltime" / args.preset).resolve()
    root.mkdir(parents=True, exist_ok=True)
    try:
        plan = timing_plan(preset, tuple(args.steps), args.device)
    except ValueError as error:
        parser.error(str(error))
    failures = run_timing(plan, root, max(args.workers, 1))
    if failures:
        print(f"{len(failures)} timing tasks failed; rerun to retry", file=sys.stderr)
        return 1
    costs = fit_costs(plan, root, read_timings(root))
    if args.lengths_from:
        try:
            grid_study = open_study(args.lengths_from, args.lengths_study or args.preset, create=False)
        except ConfigError as error:
            parser.error(str(error))
        lengths = grid_episode_lengths(finished_runs(grid_study))
        costs = [replace(cost, eval_episode_length=lengths.get(cost.env, cost.eval_episode_length)) for cost in costs]
    projection = project(preset, costs, max(args.workers, 1))
    text = report(args.preset, projection, costs, args, _device_name(args.device))
    out = args.out or root / "projection.md"
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"projection": projection, "costs": [asdict(c) for c in costs]}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
