"""The grid wall-time projection: the cost model against planted timings, and the command end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import engine, walltime  # noqa: E402  (a failing import must fail the tests, not skip them)

PRESET = engine.PRESETS["pendulum-10seeds"]  # Pendulum-v1 discretized: sppo.yml has n_steps 1024 x n_envs 4


def test_trained_steps_are_whole_rollouts():
    run = engine.make_runs(PRESET, seeds=1)[0]
    assert walltime.rollout_size(run) == 4096
    assert walltime.trained_steps(run, 4096) == 4096
    assert walltime.trained_steps(run, 4097) == 8192
    assert walltime.trained_steps(run, 100_000) == 25 * 4096


def test_steps_within_one_rollout_are_refused():
    with pytest.raises(ValueError, match="at least one rollout longer"):
        walltime.timing_plan(PRESET, (1000, 3000), "cpu")


def test_fit_recovers_planted_costs_and_projects_the_preset(tmp_path):
    plan = walltime.timing_plan(PRESET, (4096, 16384), "cpu")
    assert len(plan.short) == len(plan.long) == 3 and list(plan.eval_runs) == ["Pendulum-v1"]
    assert plan.eval_episodes == PRESET.eval_episodes
    planted = {"ppo": (4.0, 2e-4), "sppo": (5.0, 3e-4), "ppo_equiv": (6.0, 4e-4)}  # fixed s, train s per step
    eval_step_s, length = 1e-3, 200
    timings = {}
    for key, run in [*plan.short.items(), *plan.long.items()]:
        fixed, per_step = planted[key[1]]
        n_evals = 2 if run.budget == 16384 else 1  # a run may evaluate more than once; the fit must count it
        wall = fixed + per_step * walltime.trained_steps(run, run.budget) + eval_step_s * n_evals * length
        timings[run] = (wall, n_evals * run.eval_episodes * length)
    episodes = [150, 250, 200, 200, 200]  # the timed evaluation: 1000 steps, mean length 200
    timed = {"env": "Pendulum-v1", "seconds": eval_step_s * sum(episodes), "ep_lengths": episodes}
    walltime.eval_file(tmp_path, "Pendulum-v1").write_text(json.dumps(timed))

    costs = {cost.algo: cost for cost in walltime.fit_costs(plan, tmp_path, timings)}
    for algo, (fixed, per_step) in planted.items():
        assert costs[algo].fixed_s == pytest.approx(fixed)
        assert costs[algo].train_s_per_step == pytest.approx(per_step)
        assert costs[algo].eval_s_per_step == pytest.approx(eval_step_s)
        assert costs[algo].eval_episode_length == length

    projection = walltime.project(PRESET, list(costs.values()), workers=2)
    # 3 noise settings x 10 seeds of each algorithm; 20 evaluations of 5 episodes of 200 steps; 25 rollouts
    per_run = {algo: fixed + per_step * 102_400 + eval_step_s * 20 * 5 * 200 for algo, (fixed, per_step) in planted.items()}
    assert projection["runs"] == 90
    assert projection["total_run_s"] == pytest.approx(30 * sum(per_run.values()))
    assert projection["grid_wall_s"] == pytest.approx(15 * sum(per_run.values()))
    assert projection["longest_run_s"] == pytest.approx(per_run["ppo_equiv"])
    assert projection["grid_wall_s_per_1000_length_steps"] == pytest.approx(90 * eval_step_s * 20 * 5 * 1000 / 2)
    assert walltime.project(PRESET, list(costs.values()), workers=1000)["grid_wall_s"] == pytest.approx(per_run["ppo_equiv"])


@pytest.mark.slow
@pytest.mark.extended
def test_command_end_to_end_and_resume(tmp_path):
    """Real timing work (6 short Pendulum trainings, one timed evaluation), the report, a rerun that redoes nothing."""
    base = [sys.executable, "-m", "benchmarks.walltime", "--preset", "pendulum-10seeds", "--workers", "2"]
    base += ["--runs-dir", str(tmp_path)]
    command = [*base, "--steps", "4096", "16384"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    timings = walltime.read_timings(tmp_path)
    assert sorted((run.algo, run.budget) for run in timings) == sorted(
        (algo, steps) for algo in ("ppo", "sppo", "ppo_equiv") for steps in (4096, 16384)
    )
    timed = json.loads(walltime.eval_file(tmp_path, "Pendulum-v1").read_text())
    assert timed["ep_lengths"] == [200] * PRESET.eval_episodes and timed["seconds"] > 0
    result = json.loads((tmp_path / "projection.json").read_text())
    assert [cost["eval_episode_length"] for cost in result["costs"]] == [200] * 3  # Pendulum's time limit
    # short timing runs on a shared machine are noisy: a cell's fit can clamp at 0, the whole cannot
    assert sum(cost["train_s_per_step"] > 0 for cost in result["costs"]) >= 2
    projection = result["projection"]
    assert projection["runs"] == 90 and projection["train_s"] > 0 and projection["eval_s"] > 0
    assert projection["grid_wall_s"] == pytest.approx(max(projection["total_run_s"] / 2, projection["longest_run_s"]))
    text = (tmp_path / "projection.md").read_text()
    assert "Projected grid wall time with 2 workers" in text and "python -m benchmarks.walltime --preset" in text

    trials = len(engine.open_study(str(tmp_path / "timing.log"), walltime.STUDY, create=False).get_trials())
    evaluated = walltime.eval_file(tmp_path, "Pendulum-v1").stat().st_mtime_ns
    again = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(engine.open_study(str(tmp_path / "timing.log"), walltime.STUDY, create=False).get_trials()) == trials
    assert walltime.eval_file(tmp_path, "Pendulum-v1").stat().st_mtime_ns == evaluated

    refused = subprocess.run([*base, "--steps", "100", "200"], cwd=ROOT, capture_output=True, text=True)
    assert refused.returncode == 2 and "at least one rollout longer" in refused.stderr


def test_episode_lengths_of_a_finished_grid():
    records = [{"env": "Pendulum-v1", "ep_lengths": [[100 * (k + 1)] * 2] * 2} for k in range(4)] + [
        {"env": "CartPole-v1", "ep_lengths": [[500, 500], [500, 500]]}
    ]
    assert walltime.grid_episode_lengths(records) == {"Pendulum-v1": 250.0, "CartPole-v1": 500.0}
