"""
Python start-up cost of the RL-Zoo hook (``sb3_symmetric_zoo_hook.pth``): ``python -c pass`` with and without it.

Builds the wheel, installs it into two fresh venvs that differ only by the hook's ``.pth`` file, then starts
each interpreter ``--runs`` times, alternating between the two so load changes hit both alike, and reports the
median wall time and the mean CPU time (user + system) per start, plus ``python -X importtime`` of the hook.

    python benchmarks/zoo_startup.py --runs 400
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOOK_PTH = "sb3_symmetric_zoo_hook.pth"


def build_wheel(workdir: Path) -> Path:
    source = workdir / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "logs"))
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", workdir, source]
    subprocess.run(pip_wheel, check=True, capture_output=True)
    return next(workdir.glob("sb3_symmetric-*.whl"))


def venv_with_wheel(path: Path, wheel: Path, hook: bool) -> str:
    venv.create(path, with_pip=False, symlinks=True)
    python = path / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "-q", wheel], check=True)
    if not hook:
        next(path.glob(f"lib/python*/site-packages/{HOOK_PTH}")).unlink()
    return str(python)


def hook_import_us(python: str) -> int:
    importtime = subprocess.run([python, "-X", "importtime", "-c", "pass"], capture_output=True, text=True, check=True)
    line = next(line for line in importtime.stderr.splitlines() if line.endswith("_sb3_symmetric_zoo_hook"))
    return int(re.split(r"[:|]", line)[1])


def time_starts(pythons: dict[str, str], runs: int) -> dict[str, tuple[float, float, float]]:
    wall: dict[str, list[float]] = {name: [] for name in pythons}
    cpu: dict[str, list[float]] = {name: [] for name in pythons}
    order = list(pythons.items())
    for run in range(runs):
        for name, python in order if run % 2 else order[::-1]:
            start = time.perf_counter()
            pid = os.posix_spawn(python, [python, "-c", "pass"], os.environ)
            _, _, usage = os.wait4(pid, 0)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(usage.ru_utime + usage.ru_stime)
    return {
        name: (statistics.median(wall[name]), statistics.mean(cpu[name]), statistics.stdev(cpu[name]) / runs**0.5)
        for name in pythons
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=400, help="interpreter starts per variant")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        wheel = build_wheel(workdir)
        pythons = {hook: venv_with_wheel(workdir / hook, wheel, hook == "with hook") for hook in ("with hook", "without hook")}
        results = time_starts(pythons, args.runs)
        import_us = min(hook_import_us(pythons["with hook"]) for _ in range(20))
    print(f"`python -c pass`, {args.runs} starts each, interleaved ({sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    print("| venv | median wall (ms) | mean CPU (ms) |")
    print("|---|---|---|")
    for name, (wall, cpu, sem) in results.items():
        print(f"| {name} | {wall * 1e3:.2f} | {cpu * 1e3:.2f} ± {sem * 1e3:.2f} |")
    extra_cpu = results["with hook"][1] - results["without hook"][1]
    print(f"hook: {extra_cpu * 1e3:+.2f} ms CPU per start; `-X importtime` of the hook module: {import_us} us (best of 20)")


if __name__ == "__main__":
    main()
