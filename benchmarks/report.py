"""Turn the grid's runs into markdown tables (IQM and 95% bootstrap CI over seeds) and learning-curve plots.

    python -m benchmarks.report                       # reads benchmarks/runs/, writes benchmarks/results/

The final evaluation return of a run is the mean over episodes of the last evaluation in its RL-Zoo
``evaluations.npz`` (deterministic policy on a separate, noise-free env). IQM, probability of
improvement and their stratified-bootstrap CIs come from ``rliable``.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.grid import RUNS

RESULTS = Path(__file__).resolve().parent / "results"
REPORT_COMMAND = "python -m benchmarks.report"
SETTING_TITLES = {
    "clean": "Clean rewards",
    "flip0.1": "Reward flip, p = 0.1",
    "gaussian0.05": "Gaussian reward noise, sigma = 0.05",
    "gaussian1.0": "Gaussian reward noise, sigma = 1.0",
}
ORDER = ("ppo", "sppo", "ppo_weighted", "a2c", "sa2c")
# (challenger, baseline): SPPO vs its baseline, SPPO vs its gradient-identical twin (the noise floor), SA2C vs A2C
# paper.md section 6: the only figures it has, PPO / SPPO mean +- std on Atari at about 5M steps, quoted by a review
# of the ICLR-2025 version (clean or noisy setting not stated). No figures exist there for any other env.
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
FAMILIES = (("ppo", "sppo", "ppo_weighted"), ("a2c", "sa2c"))
COLORS = {"ppo": "tab:blue", "sppo": "tab:red", "ppo_weighted": "tab:gray", "a2c": "tab:green", "sa2c": "tab:purple"}
PAIRS = (("sppo", "ppo"), ("sppo", "ppo_weighted"), ("sa2c", "a2c"))


def label(algo: str, discretized: bool) -> str:
    names = {"ppo": "PPO", "sppo": "SPPO", "a2c": "A2C", "sa2c": "SA2C", "ppo_weighted": "PPO x (a+b|Z|)"}
    return ("D" if discretized and algo != "ppo_weighted" else "") + names[algo]


def load_runs(root: Path) -> dict[tuple[str, str, str], list[dict]]:
    """(setting, env, algo) -> finished runs, each with its marker, timesteps and per-evaluation mean returns."""
    cells: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
    for marker in sorted(root.glob("*/*/*/seed*/done.json")):
        run = json.loads(marker.read_text())
        with np.load(marker.parent / "evaluations.npz") as data:
            run["timesteps"] = data["timesteps"]
            run["curve"] = data["results"].mean(axis=1)
        cells[(run["setting"], run["env"], run["algo"])].append(run)
    return cells


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
    """paper.md's PPO and SPPO figures for an Atari env id (either naming), None where it has none."""
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
        extra = ["paper.md PPO / SPPO (5M steps)"] if any(paper) else []
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
        if max(len(cells[key]) for key in cells if key[0] == setting) < 2:
            lines.append("")
            continue
        pairs_here = [(x, y) for x, y in PAIRS if x in algos and y in algos]
        lines += ["", "Probability that a run of the first algorithm ends higher than a run of the second, [95% CI]:", ""]
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
                f"{point[k][0]:.2f} [{interval[k][0, 0]:.2f}, {interval[k][1, 0]:.2f}]" if (k := f"{x},{y}") in point else "-"
                for x, y in pairs_here
            ]
            lines.append(f"| {env} | " + " | ".join(text) + " |")
        lines.append("")
    return "\n".join(lines), rows


def curve_band(runs: list[dict], reps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Timesteps, mean over seeds and its 95% bootstrap CI at each evaluation."""
    length = min(len(run["curve"]) for run in runs)
    curves = np.stack([run["curve"][:length] for run in runs])[:, None, :]
    point, interval = interval_estimates({"x": curves}, lambda x: x.mean(axis=0)[0], reps)
    return runs[0]["timesteps"][:length], point["x"], interval["x"][0], interval["x"][1]


def plots(cells: dict, out: Path, reps: int, report_command: str, grid_command: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for env in dict.fromkeys(e for _, e, _ in cells):
        settings = sorted({s for s, e, _ in cells if e == env}, key=lambda s: (s != "clean", s))
        families = [f for f in FAMILIES if any(key[1] == env and key[2] in f for key in cells)]
        fig, axes = plt.subplots(
            len(families), len(settings), figsize=(max(6.0 * len(settings), 9.0), 3.8 * len(families) + 0.8), squeeze=False
        )
        for col, setting in enumerate(settings):
            for row, family in enumerate(families):
                ax = axes[row][col]
                for algo in family:
                    runs = cells.get((setting, env, algo))
                    if not runs:
                        continue
                    steps, mean, lo, hi = curve_band(runs, reps)
                    style = "--" if algo == "ppo_weighted" else "-"
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
        fig.text(0.01, 0.004, f"made by: {report_command}\nruns: {grid_command}", fontsize=6.5, color="0.35")
        fig.tight_layout(rect=(0, 0.045, 1, 0.98))
        path = out / f"curves_{env}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


def budget_comparison(cells: dict[tuple[str, str, str], list[dict]]) -> str:
    """``"CartPole-v1 20,000 (sppo.yml: 100,000)"`` per env and algorithm family: the runs' budget, the YAML's own."""
    from benchmarks.grid import zoo_entry

    families = {"ppo": "sppo", "sppo": "sppo", "ppo_weighted": "sppo", "a2c": "sa2c", "sa2c": "sa2c"}
    seen = sorted({(env, families[algo], run["budget"]) for (_, env, algo), runs in cells.items() for run in runs})
    parts = []
    for env, family, budget in seen:
        try:
            own = f"{int(float(zoo_entry(family, env)['n_timesteps'])):,}"
        except KeyError:
            own = "no entry"
        parts.append(f"{env} {budget:,} ({family}.yml: {own})")
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, default=RUNS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--reps", type=int, default=5000, help="bootstrap replications")
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    report_command = f"{REPORT_COMMAND} {shlex.join(given)}".strip()

    cells = load_runs(args.runs_dir)
    if not cells:
        print(f"No finished runs under {args.runs_dir}; run `python -m benchmarks.grid` first.", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    commands_log = args.runs_dir / "grid_commands.log"
    # in the order they were run, each once
    logged = commands_log.read_text().splitlines() if commands_log.exists() else []
    grid_commands = list(dict.fromkeys(line.split(" ", 2)[2].strip() for line in logged))
    grid_command = " ; ".join(grid_commands) or "python -m benchmarks.grid"
    text, rows = tables(cells, args.reps)
    written = plots(cells, args.out, min(args.reps, 2000), report_command, grid_command)
    n_runs = sum(len(runs) for runs in cells.values())
    hours = sum(run["wall_s"] for runs in cells.values() for run in runs) / 3600
    example = next(iter(cells.values()))[0]
    header = [
        "# Reward-noise benchmark results",
        "",
        f"Made by `{report_command}` from {n_runs} runs ({hours:.1f} hours of summed run wall time) made by:",
        "",
        *[f"    {command}" for command in grid_commands or [grid_command]],
        "",
        "Each run is one RL-Zoo training; its exact command is in its `done.json`, for example:",
        "",
        f"    {example['command']}",
        "",
        f"Training budgets, next to the `n_timesteps` of our YAML entries: {budget_comparison(cells)}.",
        "The paper trained for 2M-10M steps with 5-30 seeds (paper.md section 5). paper.md has figures for eight",
        "Atari games only (shown next to ours where such a game was run); for every other env there is nothing from",
        "the paper to compare with.",
        *(
            [
                "PPO x (a+b|Z|) is PPO whose policy loss is weighted alpha + beta*|rce_z| with SPPO's other",
                "hyperparameters: its gradient equals SPPO's (paper.md section 2), so SPPO vs it measures run-to-run"
                " noise alone.",
            ]
            if any(key[2] == "ppo_weighted" for key in cells)
            else []
        ),
        "Evaluation returns are true (noise-free) returns. For discretized envs, PPO/A2C are the paper's DPPO/DA2C.",
        "",
        "",
    ]
    (args.out / "results.md").write_text(
        "\n".join(header) + text + "\n" + "".join(f"![{p.stem}]({p.name})\n" for p in written)
    )
    with open(args.out / "final_returns.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["setting", "env", "algo", "seed", "budget", "final_eval_return", "wall_s"])
        writer.writerows(rows)
    print(f"wrote {args.out / 'results.md'}, {args.out / 'final_returns.csv'} and {len(written)} plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
