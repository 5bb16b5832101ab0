"""Run the reward-noise benchmark grid (algorithms x envs x noise settings x seeds) through RL-Zoo.

Each run is one RL-Zoo training and one trial of an Optuna study (benchmarks/engine.py); a run is finished only
when it trained its whole budget, and a finished run is never redone. Presets and algorithms: benchmarks/presets.yml.

    python -m benchmarks.grid --preset classic --workers 2          # enqueue the runs, 2 workers on this machine
    python -m benchmarks.grid --preset classic --storage postgresql://user@host/db   # the study on a server
    python -m benchmarks.grid --worker --storage postgresql://user@host/db --study-name classic   # another machine
    python -m benchmarks.grid --preset classic --dry-run            # print the RL-Zoo commands only
    python -m benchmarks.report --preset classic --out results/     # tables and plots from the study

Manual: docs/grid.rst.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from benchmarks.engine import (
    ALGORITHMS,
    PRESETS,
    RUNS,
    ConfigError,
    code_label,
    code_version,
    default_storage,
    enqueue,
    get_preset,
    make_runs,
    open_study,
    progress,
    run_key,
    run_workers,
    shown,
    storage_failure,
    work,
    zoo_command,
)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.grid", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", help=f"one of: {', '.join(sorted(PRESETS))}")
    parser.add_argument("--envs", nargs="+", help="only these envs of the preset")
    parser.add_argument("--algos", nargs="+", help=f"only these algorithms of the preset ({', '.join(ALGORITHMS)})")
    parser.add_argument("--seeds", type=int, help="number of seeds (default: the preset's)")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every budget (new runs, new names)")
    parser.add_argument("--device", default="cpu", help="torch device of every run (cuda for the paper-scale presets)")
    parser.add_argument(
        "--storage", help="journal file (.log), sqlite:///file.db or postgresql://... (default: benchmarks/runs/<study>.log)"
    )
    parser.add_argument("--study-name", help="default: the preset's name")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes on this machine")
    parser.add_argument("--worker", action="store_true", help="join an existing grid (no --preset): take its runs")
    parser.add_argument("--enqueue-only", action="store_true", help="add the runs to the study and start no worker")
    parser.add_argument(
        "--work-dir", type=Path, help="local folder for the runs' RL-Zoo logs (default: benchmarks/runs/<study>-work)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print each run's command and whether it is finished")
    parser.add_argument("--report", type=Path, metavar="OUT", help="when every run is finished, write the report into OUT")
    parser.add_argument("--overwrite", action="store_true", help="with --report: replace the report in OUT")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    try:
        return _main(args, given)
    except ConfigError as error:
        print(f"benchmarks.grid: error: {error}", file=sys.stderr)
        return 2
    except Exception as error:
        message = storage_failure(args.storage, error)
        if message is None:
            raise
        print(f"benchmarks.grid: error: {message}", file=sys.stderr)
        return 1


def _main(args: argparse.Namespace, given: list[str]) -> int:
    if args.workers < 1:
        raise ConfigError(f"--workers must be at least 1; got {args.workers}")
    if args.worker:
        if args.preset or not (args.storage and args.study_name):
            raise ConfigError("--worker joins an existing grid: give --storage and --study-name, no --preset")
        work_dir = (args.work_dir or RUNS / f"{args.study_name}-work").resolve()
        if args.workers == 1:
            return work(args.storage, args.study_name, work_dir)
        hint = shlex.join(["python", "-m", "benchmarks.grid", *given])
        return run_workers(args.storage, args.study_name, args.workers, work_dir, resume_hint=hint)
    if not args.preset:
        raise ConfigError(f"give --preset (one of: {', '.join(sorted(PRESETS))}) or --worker")
    preset = get_preset(args.preset)
    runs = make_runs(preset, args.envs, args.algos, args.seeds, args.device, args.budget_scale)
    study_name = args.study_name or preset.name
    storage = args.storage or default_storage(RUNS, study_name, create_folder=not args.dry_run)
    code = code_version()
    if args.dry_run:
        study = open_study(storage, study_name, create=False) if os.path.exists(storage) or "://" in storage else None
        done = set() if study is None else {key for key in _finished_keys(study)}
        for run in runs:
            print(("[done] " if run_key(run, code) in done else "") + zoo_command(run, f"<{run.name}>", write=False))
        return 0
    study = open_study(storage, study_name, create=True)
    keys, added = enqueue(study, runs, code)
    counts = progress(study, keys)
    print(
        f"Grid {study_name!r} at {shown(storage, storage)}: {len(runs)} runs, {counts['finished']} finished, "
        f"{added} newly queued; code {code_label(code)}"
    )
    if args.enqueue_only:
        return 0
    work_dir = (args.work_dir or RUNS / f"{study_name}-work").resolve()
    hint = shlex.join(["python", "-m", "benchmarks.grid", *given])
    status = run_workers(storage, study_name, args.workers, work_dir, keys=keys, resume_hint=hint)
    if status != 0 or args.report is None:
        return status
    from benchmarks import report

    options = ["--study-name", study_name, "--storage", storage, "--out", str(args.report)]
    return report.main([*options, *(["--overwrite"] if args.overwrite else [])])


def _finished_keys(study) -> list[str]:
    from benchmarks.engine import trials_by_key

    return list(trials_by_key(study, ("COMPLETE",)))


if __name__ == "__main__":
    sys.exit(main())
