"""Run the reward-noise benchmark grid (algos x envs x noise settings x seeds) through RL-Zoo.

Every run is one RL-Zoo training (``ExperimentManager`` via ``rl_zoo3.train``) with the YAML files as
they are, except for the training budget (``-n``), the noise (``-params callback:...``) and, for the
baselines and the ablation, ``alpha``/``beta`` (``-params``). Its exact command is stored next to its
``evaluations.npz``. Runs go to ``benchmarks/runs/<setting>/<env>/<algo>/seed<k>/``; a run is finished
when its ``done.json`` exists, so an interrupted grid resumes where it stopped (partial runs are redone).

    python -m benchmarks.grid --preset classic            # the grid committed in benchmarks/results/
    python -m benchmarks.grid --preset classic --dry-run  # print the commands only
    python -m benchmarks.report                           # tables and plots into benchmarks/results/
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shlex
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
HYPERPARAMS = ROOT / "hyperparams"
RUNS = ROOT / "benchmarks" / "runs"

# Report names. For a discretized continuous env the baselines are the paper's DPPO / DA2C: the symmetric
# algorithm with alpha=1, beta=0 on the same discretized YAML entry (paper.md section 3).
ALGOS = ("ppo", "sppo", "a2c", "sa2c", "ppo_weighted")

# paper.md section 4: flip p=0.1 (Atari), gaussian sigma=0.05 (MuJoCo / Box2D); "clean" is no noise.
NOISE_PARAMETER = {"flip": "p", "gaussian": "sigma", "uniform": "v"}


@dataclass(frozen=True)
class EnvSpec:
    env: str
    budget: int
    noises: tuple[str, ...]
    discretized: bool = False


@dataclass(frozen=True)
class Preset:
    envs: tuple[EnvSpec, ...]
    seeds: int
    n_evals: int = 10
    eval_episodes: int = 5
    algos: tuple[str, ...] = ALGOS
    note: str = ""


PRESETS: dict[str, Preset] = {
    # The grid run on 2 shared CPU cores for benchmarks/results/ (budgets far below the paper's).
    "classic": Preset(
        envs=(
            EnvSpec("CartPole-v1", 20_000, ("clean", "flip:0.1")),
            EnvSpec("Acrobot-v1", 20_000, ("clean", "flip:0.1")),
            EnvSpec("LunarLander-v3", 30_000, ("clean", "flip:0.1")),
            EnvSpec("Pendulum-v1", 16_000, ("clean", "gaussian:0.05"), discretized=True),
            EnvSpec("LunarLanderContinuous-v3", 20_000, ("clean", "gaussian:0.05"), discretized=True),
        ),
        seeds=5,
        n_evals=5,
        note="sized to run in about 70 minutes on 2 shared CPU cores",
    ),
    # PPO, SPPO and the twin at 5x the classic budgets: CartPole-v1 at RL-Zoo's own ppo.yml budget (100k steps).
    "ppo-100k": Preset(
        envs=(
            EnvSpec("CartPole-v1", 100_000, ("clean", "flip:0.1")),
            EnvSpec("Acrobot-v1", 100_000, ("clean", "flip:0.1")),
        ),
        seeds=5,
        n_evals=10,
        algos=("ppo", "sppo", "ppo_weighted"),
    ),
    # PPO, SPPO and the twin on an env that does not saturate at this budget, with 10 seeds.
    "lunar-10seeds": Preset(
        envs=(EnvSpec("LunarLander-v3", 150_000, ("clean", "flip:0.1")),),
        seeds=10,
        n_evals=10,
        algos=("ppo", "sppo", "ppo_weighted"),
    ),
    "lunar-500k": Preset(
        envs=(EnvSpec("LunarLander-v3", 500_000, ("clean", "flip:0.1")),),
        seeds=10,
        n_evals=10,
        algos=("ppo", "sppo", "ppo_weighted"),
    ),
    # The discretized-control case (beta = 20, so the twin's policy weight is 20.5) at the YAML's own budget, 10 seeds.
    # Pendulum's entry does not normalize rewards (per-step reward in [-16.3, 0]): sigma 0.05 is the paper's
    # setting, sigma 1 a noise that is large on this scale.
    "pendulum-10seeds": Preset(
        envs=(EnvSpec("Pendulum-v1", 100_000, ("clean", "gaussian:0.05", "gaussian:1.0"), discretized=True),),
        seeds=10,
        n_evals=20,
        algos=("ppo", "sppo", "ppo_weighted"),
    ),
    # A2C and SA2C with 20 seeds (cheap runs): CartPole-v1 mid-learning, LunarLander-v3 at 2.5x RL-Zoo's a2c.yml budget.
    "a2c-20seeds": Preset(
        envs=(
            EnvSpec("CartPole-v1", 100_000, ("clean", "flip:0.1")),
            EnvSpec("LunarLander-v3", 500_000, ("clean", "flip:0.1")),
        ),
        seeds=20,
        n_evals=10,
        algos=("a2c", "sa2c"),
    ),
    # Smoke runs: a few thousand steps, to check that the pipeline works on Atari and MuJoCo.
    "atari-smoke": Preset(
        envs=(EnvSpec("PongNoFrameskip-v4", 4_096, ("flip:0.1",)),),
        seeds=1,
        n_evals=1,
        eval_episodes=1,
        algos=("ppo", "sppo"),
    ),
    "mujoco-smoke": Preset(
        envs=(EnvSpec("HalfCheetah-v5", 4_096, ("gaussian:0.05",), discretized=True),),
        seeds=1,
        n_evals=2,
        eval_episodes=1,
        algos=("ppo", "sppo"),
    ),
    # The paper's scale (paper.md section 5): 5M steps and 5 seeds on Atari, 2M steps and 30 seeds on MuJoCo.
    "atari-paper": Preset(
        envs=tuple(
            EnvSpec(f"{game}NoFrameskip-v4", 5_000_000, ("clean", "flip:0.1"))
            for game in ("Alien", "Centipede", "CrazyClimber", "Gravitar", "Qbert", "MsPacman", "NameThisGame", "UpNDown")
        ),
        seeds=5,
        n_evals=500,
        eval_episodes=10,
        algos=ALGOS,
    ),
    "mujoco-paper": Preset(
        envs=tuple(
            EnvSpec(env, 2_000_000, ("clean", "gaussian:0.05"), discretized=True)
            for env in ("Ant-v5", "Hopper-v5", "HalfCheetah-v5", "Swimmer-v5", "InvertedDoublePendulum-v5")
        ),
        seeds=30,
        n_evals=400,
        eval_episodes=10,
        algos=ALGOS,
    ),
}


def setting_name(noise: str) -> str:
    """``"flip:0.1"`` -> ``"flip0.1"`` (a folder name); ``"clean"`` stays."""
    return noise.replace(":", "")


def noise_callback(noise: str) -> list | None:
    """The RL-Zoo ``callback`` hyperparameter for a noise setting like ``"flip:0.1"``, or None when clean."""
    if noise == "clean":
        return None
    kind, _, value = noise.partition(":")
    if kind not in NOISE_PARAMETER or not value:
        raise ValueError(f"Unknown noise setting {noise!r}; use 'clean', 'flip:P', 'gaussian:SIGMA' or 'uniform:V'.")
    return [{"sb3_symmetric.noise.RewardNoiseCallback": {"kind": kind, NOISE_PARAMETER[kind]: float(value)}}]


def zoo_entry(algo: str, env: str) -> dict:
    """The YAML entry RL-Zoo reads for ``algo`` on ``env`` (ours for sppo/sa2c, RL-Zoo's own otherwise)."""
    if algo in ("sppo", "sa2c"):
        path = HYPERPARAMS / f"{algo}.yml"
    else:
        import rl_zoo3

        path = Path(rl_zoo3.__file__).parent / "hyperparams" / f"{algo}.yml"
    entries = yaml.safe_load(path.read_text())
    if env in entries:
        return entries[env]
    if env.endswith("NoFrameskip-v4") or env.startswith("ALE/"):
        return entries["atari"]
    raise KeyError(f"No {algo} entry for {env} in {path}")


@dataclass(frozen=True)
class Run:
    setting: str
    env: str
    algo: str
    seed: int
    budget: int
    discretized: bool
    n_evals: int
    eval_episodes: int
    noise: str = field(compare=False)
    device: str = field(default="cpu", compare=False)

    @property
    def name(self) -> str:
        return f"{self.setting}/{self.env}/{self.algo}/seed{self.seed}"

    def zoo_algo_and_params(self) -> tuple[str, dict]:
        """RL-Zoo algo name and the ``-params`` overrides that turn it into this run's algorithm."""
        params: dict = {}
        if self.algo in ("sppo", "sa2c"):
            zoo_algo = self.algo
        elif self.algo == "ppo_weighted":
            # paper.md section 2 [derived]: SPPO's reverse gradient is |Z| x PPO's, so its twin is PPO weighted a + b|Z|
            entry = zoo_entry("sppo", self.env)
            alpha, beta, rce_z = float(entry.get("alpha", 0.5)), float(entry.get("beta", 1.0)), float(entry.get("rce_z", -1.0))
            zoo_algo, params = "sppo", {"alpha": alpha + beta * abs(rce_z), "beta": 0.0}
        elif self.discretized:
            zoo_algo, params = {"ppo": "sppo", "a2c": "sa2c"}[self.algo], {"alpha": 1.0, "beta": 0.0}
        else:
            zoo_algo = self.algo
        callback = noise_callback(self.noise)
        if callback is not None:
            params["callback"] = callback
        return zoo_algo, params

    def argv(self, log_folder: Path | str) -> list[str]:
        """Arguments of ``python -m sb3_symmetric.zoo train`` (same as ``rl_zoo3 train``) for this run."""
        zoo_algo, params = self.zoo_algo_and_params()
        argv = ["--algo", zoo_algo, "--env", self.env, "-n", str(self.budget), "--seed", str(self.seed)]
        argv += ["--eval-freq", str(max(self.budget // self.n_evals, 1)), "--eval-episodes", str(self.eval_episodes)]
        argv += ["--num-threads", "1", "--device", self.device, "--verbose", "0", "-f", str(log_folder)]
        if params:
            argv += ["-params", *(f"{key}:{_python_literal(value)}" for key, value in params.items())]
        return argv

    def command(self, log_folder: Path | str) -> str:
        return shlex.join(["python", "-m", "sb3_symmetric.zoo", "train", *self.argv(log_folder)])


def _python_literal(value) -> str:
    """``-params`` values are evaluated as Python; keep them free of single quotes so a shell line stays readable."""
    if isinstance(value, list):
        return "[" + ",".join(_python_literal(item) for item in value) + "]"
    if isinstance(value, dict):
        if all(key.isidentifier() for key in value):
            return "dict(" + ",".join(f"{key}={_python_literal(item)}" for key, item in value.items()) + ")"
        return "{" + ",".join(f"{_python_literal(key)}:{_python_literal(item)}" for key, item in value.items()) + "}"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def make_runs(
    preset: Preset,
    envs: Iterable[str] | None = None,
    algos: Iterable[str] | None = None,
    seeds: int | None = None,
    device: str = "cpu",
) -> list[Run]:
    """All runs of a preset, seed-major so an interrupted grid has whole seeds of every cell."""
    env_filter, algo_filter = set(envs or []), set(algos or [])
    runs = []
    for seed in range(seeds if seeds is not None else preset.seeds):
        for spec in preset.envs:
            if env_filter and spec.env not in env_filter:
                continue
            for noise in spec.noises:
                for algo in preset.algos:
                    if algo_filter and algo not in algo_filter:
                        continue
                    runs.append(
                        Run(
                            setting_name(noise),
                            spec.env,
                            algo,
                            seed,
                            spec.budget,
                            spec.discretized,
                            preset.n_evals,
                            preset.eval_episodes,
                            noise,
                            device,
                        )
                    )
    return runs


def is_done(run: Run, root: Path) -> bool:
    return (root / run.name / "done.json").exists()


def _train_in_process(argv: list[str]) -> None:
    from sb3_symmetric import zoo

    zoo.main(["train", *argv])


def execute(run: Run, root: Path, isolate: bool) -> tuple[str, float, str | None]:
    """Train one run into ``<name>.partial`` and move it into place with its ``done.json``."""
    final = root / run.name
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    argv = run.argv(partial / "zoo")
    start = time.perf_counter()
    try:
        with open(partial / "train.log", "w") as log:
            if isolate:
                subprocess.run(
                    [sys.executable, "-m", "sb3_symmetric.zoo", "train", *argv],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    check=True,
                    cwd=ROOT,
                )
            else:
                with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                    _train_in_process(argv)
        found = sorted((partial / "zoo").glob("*/*/evaluations.npz"))
        if not found:
            raise RuntimeError(f"no evaluations.npz under {partial / 'zoo'}")
        shutil.copy(found[0], partial / "evaluations.npz")
        wall = time.perf_counter() - start
        marker = {
            **asdict(run),
            "command": run.command(final.relative_to(ROOT) / "zoo" if final.is_relative_to(ROOT) else final / "zoo"),
            "wall_s": round(wall, 2),
            "isolate": isolate,
        }
        (partial / "done.json").write_text(json.dumps(marker, indent=1))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        return run.name, wall, None
    except BaseException:
        return run.name, time.perf_counter() - start, traceback.format_exc(limit=4)


def run_grid(runs: list[Run], root: Path, workers: int, isolate: bool) -> list[tuple[str, str]]:
    from tqdm import tqdm

    pending = [run for run in runs if not is_done(run, root)]
    failures: list[tuple[str, str]] = []
    bar = tqdm(total=len(runs), initial=len(runs) - len(pending), unit="run", dynamic_ncols=True, smoothing=0.05)
    # spawn: each worker starts clean (no inherited torch state); it imports RL-Zoo once for all its runs.
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        queue = iter(pending)
        running = {pool.submit(execute, run, root, isolate) for run in _take(queue, workers * 2)}
        while running:
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                tally(future.result(), bar, failures)
                running |= {pool.submit(execute, run, root, isolate) for run in _take(queue, 1)}
    bar.close()
    return failures


def tally(result: tuple[str, float, str | None], bar, failures: list[tuple[str, str]]) -> None:
    """Show one finished task ``(name, wall seconds, traceback or None)`` on the progress bar; keep it if it failed."""
    name, wall, error = result
    if error is None:
        bar.set_postfix_str(f"{name} {wall:.0f}s", refresh=False)
    else:
        failures.append((name, error))
        bar.write(f"FAILED {name}:\n{error}")
    bar.update()


def _take(queue, n: int) -> list:
    return [run for _, run in zip(range(n), queue, strict=False)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="classic")
    parser.add_argument("--envs", nargs="+", help="only these envs of the preset")
    parser.add_argument("--algos", nargs="+", choices=ALGOS, help="only these algorithms")
    parser.add_argument("--seeds", type=int, help="number of seeds (default: the preset's)")
    parser.add_argument("--budget-scale", type=float, default=1.0, help="multiply every budget (e.g. 0.1 to time a grid)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="parallel runs (default: one per core)")
    parser.add_argument("--runs-dir", type=Path, default=RUNS)
    parser.add_argument("--device", default="cpu", help="torch device of every run (cuda for the paper-scale presets)")
    parser.add_argument("--isolate", action="store_true", help="one subprocess per run instead of reusing worker processes")
    parser.add_argument("--dry-run", action="store_true", help="print each run's command and exit")
    args = parser.parse_args(argv)

    preset = PRESETS[args.preset]
    if args.budget_scale != 1.0:
        envs = tuple(EnvSpec(s.env, max(int(s.budget * args.budget_scale), 1), s.noises, s.discretized) for s in preset.envs)
        preset = Preset(envs, preset.seeds, preset.n_evals, preset.eval_episodes, preset.algos, preset.note)
    runs = make_runs(preset, args.envs, args.algos, args.seeds, args.device)
    root = args.runs_dir.resolve()
    if args.dry_run:
        for run in runs:
            print(("[done] " if is_done(run, root) else "") + run.command(root / run.name / "zoo"))
        return 0
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "grid_commands.log", "a") as log:
        arguments = shlex.join(sys.argv[1:] if argv is None else argv)
        log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} python -m benchmarks.grid {arguments}\n")
    failures = run_grid(runs, root, max(args.workers, 1), args.isolate)
    print(f"{len(runs) - len(failures)} of {len(runs)} runs done in {root}; {len(failures)} failed (rerun to retry)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
