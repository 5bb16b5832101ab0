"""Turn a grid's finished runs into markdown tables (IQM and 95% bootstrap CI over seeds) and learning-curve plots.

    python -m benchmarks.report --preset classic --out /tmp/classic-report     # reads the grid's study

The runs are read from the grid's Optuna study (``--storage``, default the journal file of the preset), so no shared
filesystem is needed. A run's final evaluation return is the mean over episodes of its last RL-Zoo evaluation
(deterministic policy on a separate, noise-free env). IQM, probability of improvement and their stratified-bootstrap
CIs come from ``rliable``. Runs of different code versions are never pooled: each version gets its own tables.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import subprocess
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.engine import (
    ALGORITHMS,
    ROOT,
    RUNS,
    ConfigError,
    Run,
    code_label,
    default_storage,
    duration,
    finished_runs,
    open_study,
    shown,
    zoo_call,
    zoo_entry,
)

REPORT_COMMAND = "python -m benchmarks.report"
SETTING_TITLES = {
    "clean": "Clean rewards",
    "flip0.1": "Reward flip, p = 0.1",
    "gaussian0.05": "Gaussian reward noise, sigma = 0.05",
    "gaussian1.0": "Gaussian reward noise, sigma = 1.0",
}
ORDER = tuple(ALGORITHMS)
# (challenger, baseline): SPPO vs its baseline, vs its twin (its very arithmetic) and the stock-PPO equivalent (the
# noise floor), SA2C vs A2C; then the stock-PPO equivalent and each one-knob ablation against stock PPO (whether the
# rescaled knobs, and which of them, carry a difference)
PAIRS = (
    ("sppo", "ppo"),
    ("sppo", "ppo_weighted"),
    ("sppo", "ppo_equiv"),
    ("sa2c", "a2c"),
    ("ppo_equiv", "ppo"),
    ("ppo_vf", "ppo"),
    ("ppo_ent", "ppo"),
    ("ppo_gn", "ppo"),
)
# The paper's PPO / SPPO mean +- std on Atari at about 5M steps, as quoted by a review of the ICLR-2025 version
# (clean or noisy setting not stated; docs/paper.rst, "Results"). No figures exist for any other env.
PAPER_ATARI = {
    "Alien": ("1128 +- 105", "1081 +- 79"),
    "Centipede": ("2961 +- 379", "3694 +- 224"),
    "CrazyClimber": ("86764 +- 3568", "103588 +- 2871"),
    "Gravitar": ("371 +- 47", "442 +- 67"),
    "Qbert": ("4352 +- 128", "4412 +- 282"),
    "MsPacman": ("837 +- 62", "1204 +- 86"),
    "NameThisGame": ("5665 +- 280", "5423 +- 63"),
    "UpNDown": ("58289 +- 21226", "126830 +- 27534"),
}
PALETTE = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:gray", "tab:orange", "tab:brown", "tab:pink", "tab:olive")
COLORS = {algo: PALETTE[k % len(PALETTE)] for k, algo in enumerate(ORDER)}


def family(algo: str) -> str:
    """Runs of one family share a plot: the A2C family and the PPO family."""
    return "a2c" if ALGORITHMS[algo].zoo_algo in ("a2c", "sa2c") else "ppo"


def label(algo: str, discretized: bool) -> str:
    """Table name; the stock algorithms on a discretized env are the paper's DPPO / DA2C."""
    definition = ALGORITHMS[algo]
    return ("D" if discretized and definition.discretized_as else "") + definition.label


def code_version_name(code: dict) -> str:
    """What identifies a code version: package version and hash (the commit is information only)."""
    return f"{code['version']}+{code['hash']}"


def commits_of(runs: list[dict]) -> str:
    """``"commit 1a2b3c4d5e, commit 9f8e7d6c5b (with uncommitted changes)"``: where the runs of a version were queued."""
    labels = sorted({code_label(run["code"]).partition(" (")[2].rstrip(")") for run in runs})
    return "; ".join(labels)


def group_runs(records: list[dict]) -> dict[str, dict[tuple[str, str, str], list[dict]]]:
    """code label -> (setting, env column, algo) -> runs; the env column names the budget when an env has several."""
    by_code: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        by_code[code_version_name(record["code"])].append(record)
    groups = {}
    for code, runs in by_code.items():
        budgets = defaultdict(set)
        for run in runs:
            budgets[run["env"]].add(run["budget"])
        cells: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
        for run in runs:
            run["curve"] = np.asarray(run["returns"], dtype=float).mean(axis=1)
            run["timesteps"] = np.asarray(run["timesteps"])
            run["setting"] = Run.from_dict({k: run[k] for k in Run.__dataclass_fields__}).setting
            column = run["env"] if len(budgets[run["env"]]) == 1 else f"{run['env']} @ {run['budget']:,}"
            cells[(run["setting"], column, run["algo"])].append(run)
        groups[code] = dict(cells)
    return groups


def identical_twin_runs(records: list[dict]) -> tuple[int, int]:
    """How many SPPO runs made the very evaluations of their twin's run (same code, cell and seed), of how many pairs."""

    def key(run: dict) -> tuple:
        return code_version_name(run["code"]), run["setting"], run["env"], run["budget"], run["seed"]

    twins = {key(run): run for run in records if ALGORITHMS[run["algo"]].twin}
    pairs = [(run, twins[key(run)]) for run in records if run["algo"] == "sppo" and key(run) in twins]
    return sum(run["returns"] == twin["returns"] for run, twin in pairs), len(pairs)


def interval_estimates(scores: dict, func, reps: int, seed: int = 0) -> tuple[dict, dict]:
    from rliable import library as rly

    # rliable passes a RandomState to `arch`, which warns about it on every call
    warnings.filterwarnings("ignore", category=FutureWarning, module="arch")
    # rliable's stratified resampling draws from NumPy's global generator, so seed that too for a repeatable report
    np.random.seed(seed)
    return rly.get_interval_estimates(scores, func, reps=reps, random_state=np.random.RandomState(seed))


def final_scores(runs: list[dict]) -> np.ndarray:
    """(n_seeds, 1) final evaluation returns, as rliable wants them (one task)."""
    return np.array([[run["curve"][-1]] for run in sorted(runs, key=lambda r: r["seed"])])


def paper_figures(env: str) -> tuple[str, str] | None:
    """The paper's PPO and SPPO figures (docs/paper.rst, "Results") for an Atari env id, None where it has none."""
    game = env.removeprefix("ALE/").split("NoFrameskip")[0].split("-v")[0]
    return PAPER_ATARI.get(game)


def tables(cells: dict, reps: int) -> tuple[str, list[list]]:
    from rliable import metrics

    lines, rows = [], []
    settings = sorted({s for s, _, _ in cells}, key=lambda s: (s != "clean", s))
    for setting in settings:
        envs = list(dict.fromkeys(e for s, e, _ in cells if s == setting))
        algos = [a for a in ORDER if any((setting, e, a) in cells for e in envs)]
        lines += [f"### {SETTING_TITLES.get(setting, setting)}", ""]
        lines += ["Final evaluation return, IQM [95% CI] over seeds (n = seeds).", ""]
        paper = [paper_figures(env) for env in envs]
        extra = ["paper PPO / SPPO (5M steps)"] if any(paper) else []
        header = ["env", "budget", *(label(a, False).replace("|", "\\|") for a in algos), *extra]
        lines += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
        for env in envs:
            present = {a: cells[(setting, env, a)] for a in algos if (setting, env, a) in cells}
            point, interval = interval_estimates(
                {a: final_scores(r) for a, r in present.items()}, lambda x: np.array([metrics.aggregate_iqm(x)]), reps
            )
            budget = next(iter(present.values()))[0]["budget"]
            cells_text = []
            for algo in algos:
                if algo not in present:
                    cells_text.append("-")
                    continue
                lo, hi = interval[algo][:, 0]
                cells_text.append(f"{point[algo][0]:.1f} [{lo:.1f}, {hi:.1f}] (n={len(present[algo])})")
                for run in present[algo]:
                    rows.append([setting, env, algo, run["seed"], run["budget"], f"{run['curve'][-1]:.3f}", run["wall_s"]])
            discretized = next(iter(present.values()))[0]["discretized"]
            if extra:
                figures = paper_figures(env)
                cells_text.append(" / ".join(figures) if figures else "-")
            lines.append(f"| {env}{' (discretized)' if discretized else ''} | {budget:,} | " + " | ".join(cells_text) + " |")
        pairs_here = [(x, y) for x, y in PAIRS if x in algos and y in algos]
        if max(len(cells[key]) for key in cells if key[0] == setting) < 2 or not pairs_here:
            lines.append("")
            continue
        lines += [
            "",
            "Probability that a run of the first algorithm ends higher than a run of the second, [95% CI]; in bold where "
            "the interval excludes 0.5."
            + (
                " SPPO and the SPPO-equivalent PPO train with the same gradient: where SPPO against it is bold, rounding "
                "alone separated runs, and a bold SPPO against PPO there says nothing."
                if "ppo_equiv" in algos
                else ""
            ),
            "",
        ]
        lines += [
            "| env | "
            + " | ".join(f"P({label(x, False)} > {label(y, False)})".replace("|", "\\|") for x, y in pairs_here)
            + " |",
            "|---" * (len(pairs_here) + 1) + "|",
        ]
        for env in envs:
            pairs = {
                f"{x},{y}": (final_scores(cells[(setting, env, x)]), final_scores(cells[(setting, env, y)]))
                for x, y in pairs_here
                if (setting, env, x) in cells and (setting, env, y) in cells
            }
            point, interval = (
                interval_estimates(pairs, lambda x, y: np.array([metrics.probability_of_improvement(x, y)]), reps)
                if pairs
                else ({}, {})
            )
            text = [
                probability_text(point[k][0], *interval[k][:, 0]) if (k := f"{x},{y}") in point else "-" for x, y in pairs_here
            ]
            lines.append(f"| {env} | " + " | ".join(text) + " |")
        lines.append("")
    return "\n".join(lines), rows


def probability_text(point: float, low: float, high: float) -> str:
    """``0.62 [0.40, 0.81]``, in bold when the interval excludes 0.5 (the two algorithms' runs separate)."""
    text = f"{point:.2f} [{low:.2f}, {high:.2f}]"
    return f"**{text}**" if low > 0.5 or high < 0.5 else text


def curve_band(runs: list[dict], reps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Timesteps, mean over seeds and its 95% bootstrap CI at each evaluation."""
    length = min(len(run["curve"]) for run in runs)
    curves = np.stack([run["curve"][:length] for run in runs])[:, None, :]
    point, interval = interval_estimates({"x": curves}, lambda x: x.mean(axis=0)[0], reps)
    return runs[0]["timesteps"][:length], point["x"], interval["x"][0], interval["x"][1]


def plots(cells: dict, out: Path, reps: int, footer: str, suffix: str = "") -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for env in dict.fromkeys(e for _, e, _ in cells):
        settings = sorted({s for s, e, _ in cells if e == env}, key=lambda s: (s != "clean", s))
        families = [[a for a in ORDER if family(a) == f] for f in ("ppo", "a2c")]
        families = [f for f in families if any(key[1] == env and key[2] in f for key in cells)]
        fig, axes = plt.subplots(
            len(families), len(settings), figsize=(max(6.0 * len(settings), 9.0), 3.8 * len(families) + 0.8), squeeze=False
        )
        for col, setting in enumerate(settings):
            for row, members in enumerate(families):
                ax = axes[row][col]
                for algo in members:
                    runs = cells.get((setting, env, algo))
                    if not runs:
                        continue
                    steps, mean, lo, hi = curve_band(runs, reps)
                    style = "--" if ALGORITHMS[algo].twin or ALGORITHMS[algo].equivalent else "-"
                    name = f"{label(algo, runs[0]['discretized'])} (n={len(runs)})"
                    ax.plot(steps, mean, style, marker="o", markersize=3, color=COLORS[algo], label=name)
                    ax.fill_between(steps, lo, hi, color=COLORS[algo], alpha=0.2)
                ax.set_title(f"{env}: {SETTING_TITLES.get(setting, setting)}", fontsize=10)
                ax.set_ylabel("evaluation return (true reward)")
                ax.set_xlabel("environment steps")
                ax.grid(alpha=0.3)
                if ax.lines:
                    ax.legend(fontsize=8, loc="best")
        fig.suptitle("mean over seeds, band: 95% bootstrap CI", fontsize=10)
        fig.text(0.01, 0.004, footer, fontsize=6.5, color="0.35")
        fig.tight_layout(rect=(0, 0.045, 1, 0.98))
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in env.replace(" @ ", "_"))
        path = out / f"curves_{name}{suffix}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def budget_comparison(cells: dict[tuple[str, str, str], list[dict]]) -> str:
    """``"CartPole-v1 20,000 (ppo.yml, sppo.yml: 100,000)"`` per env and budget: the runs' budget, each YAML's own."""
    sources: dict[tuple[str, int, str], set[str]] = {}
    for runs in cells.values():
        for run in runs:
            call = zoo_call(Run.from_dict({k: run[k] for k in Run.__dataclass_fields__}))
            if call.conf_entry is not None:
                # a generated entry (the stock-PPO equivalents): it keeps the budget of the entry it was made from
                source = f"{call.zoo_algo} generated from sppo.yml"
                own = call.conf_entry.get("n_timesteps")
            else:
                source = str(call.conf_file.relative_to(ROOT)) if call.conf_file else f"{call.zoo_algo}.yml"
                try:
                    own = zoo_entry(call.zoo_algo, run["env"], call.conf_file)["n_timesteps"]
                except KeyError:
                    own = None
            own_text = "no entry" if own is None else f"{int(float(own)):,}"
            sources.setdefault((run["env"], run["budget"], own_text), set()).add(source)
    return "; ".join(
        f"{env} {budget:,} ({', '.join(sorted(names))}: {own})" for (env, budget, own), names in sorted(sources.items())
    )


def _tracked(out: Path) -> bool:
    """Whether git tracks files in ``out`` (committed results)."""
    try:
        done = subprocess.run(["git", "ls-files", "--", str(out.resolve())], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return False
    return done.returncode == 0 and bool(done.stdout.strip())


def write_report(records: list[dict], out: Path, reps: int, report_command: str, source: str) -> list[Path]:
    """results.md, final_returns.csv and one plot per env (and code version) into ``out``."""
    groups = group_runs(records)
    out.mkdir(parents=True, exist_ok=True)
    n_runs = len(records)
    summed = duration(sum(run["wall_s"] for run in records))
    example = records[0]
    sections, rows, written = [], [], []
    for index, (code, cells) in enumerate(sorted(groups.items())):
        text, group_rows = tables(cells, reps)
        footer = f"made by: {report_command}\ncode: {code}"
        suffix = "" if len(groups) == 1 else f"_code{index + 1}"
        pictures = plots(cells, out, min(reps, 2000), footer, suffix)
        written += pictures
        rows += [[code, *row] for row in group_rows]
        sections += [
            f"## Code version {code}",
            "",
            f"Runs queued at: {commits_of([run for runs in cells.values() for run in runs])}.",
            "",
            f"Training budgets, next to the `n_timesteps` of the YAML entries: {budget_comparison(cells)}.",
            "",
            text,
            "".join(f"![{p.stem}]({p.name})\n" for p in pictures),
        ]
    same, pairs = identical_twin_runs(records)
    header = [
        "# Reward-noise benchmark results",
        "",
        f"Made by `{report_command}` from {n_runs} finished runs ({summed} of summed run wall time) of {source}.",
        "Each code version (package version + hash of the files that can change a result, and the git commit the",
        "runs were queued at) has its own tables; runs of different versions are never pooled.",
        "",
        "Each run is one RL-Zoo training at its whole budget; its command is stored in its trial, for example:",
        "",
        f"    {example['command']}",
        "",
        'The paper trained for 2M-10M steps with 5-30 seeds (docs/paper.rst, "Hyperparameters"). Figures from the',
        "paper exist for eight Atari games only (shown next to ours where such a game was run).",
        *(
            [
                "PPO x (a+b|Z|) is SymPPO with beta 0 and alpha + beta*|Z| as its one policy weight: SPPO's gradient and,",
                "at the current code, SPPO's arithmetic too (tests/test_algos.py), so it is no noise floor. SPPO and it",
                f"made the same evaluations in {same} of {pairs} seed pairs here.",
            ]
            if pairs
            else []
        ),
        *(
            [
                "The SPPO-equivalent PPO is stock PPO with SPPO's gradient but its own rounding (docs/paper.rst,",
                '"Stock-PPO equivalent"), so SPPO against it measures run-to-run noise alone.',
            ]
            if any(run["algo"] == "ppo_equiv" for run in records)
            else []
        ),
        "Evaluation returns are true (noise-free) returns. For discretized envs, PPO/A2C are the paper's DPPO/DA2C.",
        "",
    ]
    (out / "results.md").write_text("\n".join(header + sections) + "\n")
    with open(out / "final_returns.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["code", "setting", "env", "algo", "seed", "budget", "final_eval_return", "wall_s"])
        writer.writerows(rows)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", help="the grid's preset (its study name and default storage)")
    parser.add_argument("--storage", help="the grid's storage (default: benchmarks/runs/<study>.log)")
    parser.add_argument("--study-name", help="default: the preset's name")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.md, final_returns.csv and plots")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report (committed results too)")
    parser.add_argument("--reps", type=int, default=5000, help="bootstrap replications")
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else list(argv)
    report_command = f"{REPORT_COMMAND} {shlex.join(given)}".strip()
    study_name = args.study_name or args.preset
    if not study_name:
        parser.error("give --preset or --study-name")
    if (args.out / "results.md").exists() and not args.overwrite:
        what = "committed results" if _tracked(args.out) else "a report"
        print(f"benchmarks.report: error: {args.out} holds {what}; pass --overwrite to replace it", file=sys.stderr)
        return 2
    storage = args.storage or default_storage(RUNS, study_name)
    try:
        study = open_study(storage, study_name, create=False)
    except ConfigError as error:
        print(f"benchmarks.report: error: {error}", file=sys.stderr)
        return 2
    records = finished_runs(study)
    if not records:
        print(f"benchmarks.report: no finished runs in study {study_name!r} at {shown(storage, storage)}", file=sys.stderr)
        return 1
    written = write_report(records, args.out, args.reps, report_command, f"study `{study_name}`")
    print(f"wrote {args.out / 'results.md'}, {args.out / 'final_returns.csv'} and {len(written)} plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
