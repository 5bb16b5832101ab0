"""The grid engine: runs as trials of an Optuna study, workers killed and interrupted, resumed, reported.

The end-to-end tests train real (tiny) CartPole runs in real worker processes, on a journal file and on a
throwaway PostgreSQL server, kill and interrupt them mid-run, and check that every run ends finished exactly once
at its full budget, that no process is left behind, and that the report equals that of one undisturbed worker.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from postgres_fixtures import postgres_server  # noqa: E402
from waiting import wait_for  # noqa: E402

from benchmarks import engine  # noqa: E402  (a failing import must fail the tests, not skip them)
from sb3_symmetric import tuning  # noqa: E402

# CartPole-v1 of the classic preset at 0.1 of its budget: 2,000 steps (whole rollouts: 2,048), PPO, 2 seeds x 2 noises
GRID = ["--preset", "classic", "--envs", "CartPole-v1", "--algos", "ppo", "--seeds", "2", "--budget-scale", "0.1"]
N_RUNS = 4


def report_args(out: Path) -> list[str]:
    return ["--out", str(out), "--reps", "200"]


def grid(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SB3_SYMMETRIC_HEARTBEAT_INTERVAL": "2"}
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.grid", *args], cwd=ROOT, capture_output=True, text=True, env=env, **kwargs
    )


def start(args: list[str], tmp_path: Path, name: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SB3_SYMMETRIC_HEARTBEAT_INTERVAL": "2"}
    log = open(tmp_path / f"{name}.out", "w")  # noqa: SIM115  (closed with the process)
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.grid", *args],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its own process group, as a terminal gives a command
    )


def process_fields(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or None for a process that is gone or a zombie.

    A zombie counts as dead: where PID 1 does not reap orphans (a container's), a killed worker's run stays a zombie.
    """
    fields = tuning._process_stat(int(pid))
    return None if fields[:1] in ([], ["Z"]) else fields


def identities(pids: list[int]) -> list[tuple[int, str]]:
    """Each live PID with its start time (field 22 of ``/proc/<pid>/stat``): a PID the kernel reuses is another process."""
    return [(pid, fields[19]) for pid in pids if (fields := process_fields(pid)) is not None]


def still_running(identity: tuple[int, str]) -> bool:
    fields = process_fields(identity[0])
    return fields is not None and fields[19] == identity[1]


def processes_mentioning(text: str) -> list[int]:
    """PIDs of live processes whose command line contains ``text`` (workers and their RL-Zoo children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and process_fields(entry.name) is not None:
            found.append(int(entry.name))
    return found


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = process_fields(entry.name)
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def study_when_created(storage: str):
    """The grid's study once the grid command has created it (its journal file exists a moment before)."""
    try:
        return engine.open_study(storage, "classic", create=False)
    except engine.ConfigError:
        return None


def running_trials(study) -> list:
    return [t for t in study.get_trials(deepcopy=False) if t.state.name == "RUNNING" and "worker" in t.user_attrs]


def training_children(work_dir: Path) -> list[int]:
    return [pid for pid in processes_mentioning(f"{work_dir}/trial") if pid != os.getpid()]


def assert_all_finished_once(study, budget: int = 2000) -> None:
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    keys = [t.user_attrs["key"] for t in complete]
    assert len(keys) == N_RUNS and len(set(keys)) == N_RUNS, keys
    for trial in complete:
        result = trial.user_attrs["result"]
        assert result["num_timesteps"] >= budget and result["num_timesteps"] == 2048
        assert len(result["timesteps"]) == 5 and trial.value == pytest.approx(sum(result["returns"][-1]) / 5)
    assert not [t for t in study.get_trials(deepcopy=False) if t.state.name in ("WAITING", "RUNNING")]


def report_rows(study_storage: str, out: Path) -> tuple[list[list[str]], str]:
    """final_returns.csv without the code and wall-time columns, and the tables of results.md."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.report", "--study-name", "classic", "--storage", study_storage, *report_args(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out / "final_returns.csv") as handle:
        rows = [row[1:-1] for row in csv.reader(handle)][1:]
    text = (out / "results.md").read_text()
    tables = text[text.index("### ") :]
    return sorted(rows), "\n".join(line for line in tables.splitlines() if not line.startswith("!["))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The 4 runs made by one undisturbed worker, and their report."""
    folder = tmp_path_factory.mktemp("reference")
    storage = str(folder / "grid.log")
    done = grid(*GRID, "--workers", "1", "--storage", storage, "--work-dir", str(folder / "work"), timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert f"{N_RUNS} of {N_RUNS} runs finished" in done.stdout
    return report_rows(storage, folder / "report")


# ---------------------------------------------------------------- fast: catalog, identity, commands, errors


def test_catalog_presets_and_algorithms():
    for name in ("classic", "ppo-100k", "lunar-10seeds", "lunar-500k", "pendulum-10seeds", "a2c-20seeds", "minatar"):
        assert name in engine.PRESETS
    minatar = engine.PRESETS["minatar"]
    assert minatar.seeds == 10 and [spec.env for spec in minatar.envs] == ["MinAtar/Breakout-v1", "MinAtar/SpaceInvaders-v1"]
    assert minatar.algos == ("ppo", "sppo", "ppo_equiv", "ppo_vf", "ppo_ent", "ppo_gn", "a2c", "sa2c")
    assert all(spec.noises == ("clean", "flip:0.1") and spec.budget == 200_000 for spec in minatar.envs)
    runs = engine.make_runs(engine.PRESETS["classic"])
    assert len(runs) == 5 * 2 * 5 * 5 and len(set(runs)) == len(runs)
    assert [run.seed for run in runs] == sorted(run.seed for run in runs)


@pytest.mark.parametrize(
    "text, message",
    [
        ("algorithms: {}\npresets: {p: {envs: [], seeds: 1, algos: [nope]}}", "unknown algorithm"),
        ("algorithms: {a: {zoo_algo: ppo}}\npresets: {p: {envs: [], seeds: 0, algos: [a]}}", "seeds must be a positive"),
        ("algorithms: {a: {zoo_algo: ppo, colour: red}}\npresets: {}", "unknown field"),
        (
            "algorithms: {a: {zoo_algo: ppo}}\npresets: {p: {seeds: 1, algos: [a], envs: [{env: E, budget: 5, "
            "noises: ['flip:x']}]}}",
            "Unknown noise setting",
        ),
        ("algorithms: {a: {zoo_algo: ppo, equivalent: [lr]}}\npresets: {}", "'equivalent' is 'all' or a list"),
        ("presets: {}", "exactly the sections"),
    ],
)
def test_bad_catalog_is_a_clear_error(tmp_path, text, message):
    path = tmp_path / "presets.yml"
    path.write_text(text)
    with pytest.raises(engine.ConfigError, match=message):
        engine.load_catalog(path)


def _params(argv: list[str]) -> dict:
    import argparse

    from rl_zoo3.utils import StoreDict

    parser = argparse.ArgumentParser()
    parser.add_argument("-params", nargs="+", action=StoreDict, default={})
    parser.add_argument("--algo")
    parser.add_argument("-conf")
    known, _ = parser.parse_known_args(argv)
    return {"algo": known.algo, **known.params, **({"conf": known.conf} if known.conf else {})}


@pytest.mark.parametrize(
    "env, algo, discretized, expected",
    [
        ("CartPole-v1", "ppo", False, {"algo": "ppo"}),
        ("CartPole-v1", "sppo", False, {"algo": "sppo"}),
        ("CartPole-v1", "a2c", False, {"algo": "a2c"}),
        ("CartPole-v1", "ppo_weighted", False, {"algo": "sppo", "alpha": 1.5, "beta": 0.0}),
        ("Pendulum-v1", "ppo", True, {"algo": "sppo", "alpha": 1.0, "beta": 0.0}),
        ("Pendulum-v1", "a2c", True, {"algo": "sa2c", "alpha": 1.0, "beta": 0.0}),
        ("Pendulum-v1", "ppo_weighted", True, {"algo": "sppo", "alpha": 20.5, "beta": 0.0}),
    ],
)
def test_algorithm_names_map_to_zoo_runs(tmp_path, env, algo, discretized, expected):
    run = engine.Run(algo, env, "clean", 0, 1000, 2, 1, discretized)
    assert _params(engine.zoo_argv(run, tmp_path)) == expected


def test_noise_setting_becomes_the_callback_entry(tmp_path):
    params = _params(engine.zoo_argv(engine.Run("sa2c", "CartPole-v1", "flip:0.1", 0, 1000, 2, 1), tmp_path))
    assert params["callback"] == [{"sb3_symmetric.noise.RewardNoiseCallback": {"kind": "flip", "p": 0.1}}]
    with pytest.raises(engine.ConfigError, match="Unknown noise setting"):
        engine.noise_callback("normal:0.1")


@pytest.mark.parametrize("algo, knobs", [("ppo_equiv", None), ("ppo_vf", ("vf_coef",)), ("ppo_gn", ("max_grad_norm",))])
def test_stock_ppo_equivalents_get_the_mapped_sppo_entry(tmp_path, monkeypatch, algo, knobs):
    """ppo_equiv / ppo_vf / ...: stock PPO with ppo_equivalent() of sppo.yml's entry (the function is stubbed here)."""
    import yaml

    import sb3_symmetric

    calls = []

    def stub(alpha=0.5, beta=1.0, rce_z=-1.0, *, knobs=None, **ppo_kwargs):
        calls.append((alpha, beta, rce_z, knobs, ppo_kwargs))
        w = alpha + beta * abs(rce_z)
        policy_kwargs = {**ppo_kwargs.get("policy_kwargs", {}), "optimizer_kwargs": {"eps": 1e-5 / w}}
        return {**ppo_kwargs, "vf_coef": 0.5 / w, "policy_kwargs": policy_kwargs}

    monkeypatch.setattr(sb3_symmetric, "ppo_equivalent", stub, raising=False)
    run = engine.Run(algo, "Pendulum-v1", "gaussian:0.05", 0, 1000, 2, 1, discretized=True)
    argv = engine.zoo_argv(run, tmp_path)
    params = _params(argv)
    assert params["algo"] == "ppo" and params["conf"] == str(tmp_path / "conf.yml")
    entry = engine.zoo_entry("sppo", "Pendulum-v1")
    alpha, beta, rce_z, given_knobs, kwargs = calls[0]
    assert (alpha, beta, rce_z) == (entry["alpha"], entry["beta"], entry["rce_z"]) and given_knobs == knobs
    assert not {"alpha", "beta", "rce_z", "n_envs", "n_timesteps", "policy"} & set(kwargs)
    written = yaml.safe_load((tmp_path / "conf.yml").read_text())["Pendulum-v1"]
    w = entry["alpha"] + entry["beta"] * abs(entry["rce_z"])
    assert written["vf_coef"] == pytest.approx(0.5 / w) and written["n_envs"] == entry["n_envs"]
    assert written["env_wrapper"] == entry["env_wrapper"] and "alpha" not in written
    # RL-Zoo evaluates policy_kwargs strings with torch's nn in scope: the written one must evaluate back
    from torch import nn  # noqa: F401

    assert eval(written["policy_kwargs"])["optimizer_kwargs"]["eps"] == pytest.approx(1e-5 / w)


@pytest.mark.parametrize("algo, knobs", [("ppo_equiv", None), ("ppo_gn", ("max_grad_norm",))])
def test_stock_ppo_equivalents_with_the_real_mapping(tmp_path, algo, knobs):
    """The written -conf entry is what sb3_symmetric.ppo_equivalent gives for sppo.yml's MinAtar entry."""
    import yaml

    from sb3_symmetric import ppo_equivalent

    run = engine.Run(algo, "MinAtar/Breakout-v1", "clean", 0, 1000, 2, 1)
    engine.zoo_argv(run, tmp_path)
    written = yaml.safe_load((tmp_path / "conf.yml").read_text())["MinAtar/Breakout-v1"]
    entry = engine.zoo_entry("sppo", "MinAtar/Breakout-v1")
    expected = ppo_equivalent(entry["alpha"], entry["beta"], entry["rce_z"], knobs=knobs, vf_coef=entry.get("vf_coef", 0.5))
    assert written["vf_coef"] == pytest.approx(expected["vf_coef"])
    w = entry["alpha"] + entry["beta"] * abs(entry["rce_z"])
    assert written["max_grad_norm"] == pytest.approx(entry.get("max_grad_norm", 0.5) / w)
    if knobs is not None:
        assert written["vf_coef"] == pytest.approx(entry.get("vf_coef", 0.5))


# SymPPO's settings given as overrides: alpha 1 makes w = 1 + 1 * |-1| = 2 with sppo.yml's beta and rce_z
SYMPPO_OVERRIDES = (
    ("alpha", "1.0"),
    ("ent_coef", "0.02"),
    ("vf_coef", "0.4"),
    ("learning_rate", "0.001"),
    ("policy_kwargs", "dict(net_arch=[32])"),
)


def _trained_entry(tmp_path: Path, run: engine.Run) -> tuple[dict, list[str]]:
    """What RL-Zoo trains with: the -conf entry updated by the -params (as RL-Zoo applies them), and the argv."""
    argv = engine.zoo_argv(run, tmp_path)
    params = _params(argv)
    entry = yaml.safe_load((tmp_path / "conf.yml").read_text())[run.env]
    entry.update({key: value for key, value in params.items() if key not in ("algo", "conf")})
    if isinstance(entry.get("policy_kwargs"), str):
        import torch as th  # noqa: F401  (names the generated policy_kwargs use)
        from torch import nn  # noqa: F401

        entry["policy_kwargs"] = eval(entry["policy_kwargs"])
    return entry, argv


@pytest.mark.parametrize(
    "algo, divided", [("ppo_equiv", {"vf_coef", "ent_coef", "max_grad_norm", "eps"}), ("ppo_ent", {"ent_coef"})]
)
def test_overrides_of_an_equivalent_are_symppos_and_are_converted_with_it(tmp_path, algo, divided):
    """An override on a stock-PPO equivalent is SymPPO's: its knobs get the conversion the entry's get, with the weight
    the overrides make (a raw -params override would undo the conversion)."""
    run = engine.Run(algo, "CartPole-v1", "clean", 0, 1000, 2, 1, overrides=SYMPPO_OVERRIDES)
    trained, argv = _trained_entry(tmp_path, run)
    symppo = {"ent_coef": 0.02, "vf_coef": 0.4, "max_grad_norm": 0.5, "eps": 1e-5}  # SB3's defaults for the last two
    trained_eps = trained["policy_kwargs"].get("optimizer_kwargs", {}).get("eps", 1e-5)
    for knob, value in symppo.items():
        got = trained_eps if knob == "eps" else trained.get(knob, 0.5)
        assert got == pytest.approx(value / 2 if knob in divided else value, rel=1e-15), knob
    assert trained["learning_rate"] == 0.001 and trained["policy_kwargs"]["net_arch"] == [32]
    assert not {"alpha", "beta", "rce_z"} & set(trained)
    assert "learning_rate:0.001" in argv  # overrides the conversion leaves alone keep their text


def test_overrides_of_the_twin_set_its_weight():
    run = engine.Run("ppo_weighted", "CartPole-v1", "clean", 0, 1000, 2, 1, overrides=SYMPPO_OVERRIDES)
    params = _params(engine.zoo_argv(run, "unused"))
    assert (params["algo"], params["alpha"], params["beta"]) == ("sppo", 2.0, 0.0)
    assert (params["ent_coef"], params["vf_coef"]) == (0.02, 0.4)


def test_an_equivalent_with_overrides_trains_like_symppo_with_them(tmp_path):
    """Through RL-Zoo: SymPPO with the overrides and its stock-PPO equivalent with the same overrides end with the
    same parameters, stock PPO with them does not (a tight gradient-clipping override makes the clipped norm matter)."""
    import torch as th
    from stable_baselines3 import PPO

    from sb3_symmetric import SymPPO

    overrides = (*SYMPPO_OVERRIDES, ("max_grad_norm", "0.05"), ("n_envs", "2"), ("n_steps", "64"), ("batch_size", "32"))
    weights = {}
    for algo in ("sppo", "ppo_equiv", "ppo"):
        given = overrides if algo != "ppo" else tuple(item for item in overrides if item[0] != "alpha")
        run = engine.Run(algo, "CartPole-v1", "clean", 0, 512, 1, 1, overrides=given)
        argv = engine.zoo_argv(run, tmp_path / algo)
        done = subprocess.run(
            [sys.executable, "-m", "sb3_symmetric.zoo", "train", *argv],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        assert done.returncode == 0, done.stderr[-2000:]
        (saved,) = (tmp_path / algo / "zoo").glob("*/CartPole-v1_*/CartPole-v1.zip")
        policy = SymPPO.load(saved, device="cpu").policy if algo == "sppo" else PPO.load(saved, device="cpu").policy
        weights[algo] = th.cat([tensor.flatten() for tensor in policy.state_dict().values()])
    assert (weights["sppo"] - weights["ppo_equiv"]).abs().max().item() < 1e-6
    assert (weights["sppo"] - weights["ppo"]).abs().max().item() > 1e-4


def test_dry_run_prints_every_command_and_writes_nothing(tmp_path):
    storage = tmp_path / "grid.log"
    done = grid("--preset", "minatar", "--seeds", "1", "--envs", "MinAtar/Breakout-v1", "--dry-run", "--storage", str(storage))
    assert done.returncode == 0, done.stderr[-2000:]
    commands = [line for line in done.stdout.splitlines() if "sb3_symmetric.zoo train" in line]
    preset = engine.get_preset("minatar")
    assert len(commands) == len(preset.algos) * 2
    assert not list(tmp_path.iterdir()) and not list(ROOT.glob("<*"))


def test_equivalent_without_the_function_is_a_clear_error(tmp_path, monkeypatch):
    import sb3_symmetric

    monkeypatch.delattr(sb3_symmetric, "ppo_equivalent", raising=False)
    with pytest.raises(engine.ConfigError, match=r"needs sb3_symmetric\.ppo_equivalent"):
        engine.zoo_argv(engine.Run("ppo_equiv", "CartPole-v1", "clean", 0, 1000, 2, 1), tmp_path)


def test_run_identity_changes_with_everything_that_changes_a_result(monkeypatch):
    code = engine.code_version()
    run = engine.Run("sppo", "CartPole-v1", "flip:0.1", 0, 2000, 5, 5)
    key = engine.run_key(run, code)
    assert key.startswith("flip0.1/CartPole-v1/sppo/seed0/2000@")
    changed = [
        engine.Run("sppo", "CartPole-v1", "flip:0.1", 0, 2001, 5, 5),  # budget
        engine.Run("sppo", "CartPole-v1", "flip:0.2", 0, 2000, 5, 5),  # noise
        engine.Run("sppo", "CartPole-v1", "flip:0.1", 1, 2000, 5, 5),  # seed
        engine.Run("sppo", "CartPole-v1", "flip:0.1", 0, 2000, 4, 5),  # evaluation schedule
        engine.Run("sppo", "CartPole-v1", "flip:0.1", 0, 2000, 5, 5, device="cuda"),
        engine.Run("sppo", "CartPole-v1", "flip:0.1", 0, 2000, 5, 5, overrides=(("learning_rate", "1e-3"),)),
    ]
    keys = {engine.run_key(other, code) for other in changed}
    assert len(keys) == len(changed) and key not in keys
    assert engine.run_key(run, {**code, "hash": "0" * 16}) != key  # code changed
    assert engine.run_key(run, {**code, "libraries": {**code["libraries"], "torch": "0"}}) != key
    assert engine.run_key(run, {**code, "commit": "x" * 40, "dirty": True}) == key  # a docs-only commit keeps runs


def test_runs_are_marked_uncommitted_for_changed_code_and_not_for_the_grids_own_journals(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    files = [Path("sb3_symmetric/sppo.py"), *(Path(folder, "grid.log") for folder in engine.OUTPUT_DIRS)]
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("first\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    assert not engine.uncommitted_changes(tmp_path)
    for name in files[1:]:  # a running grid appends to its journal, a report rewrites its results
        (tmp_path / name).write_text("first\nsecond\n")
    (tmp_path / "untracked.py").write_text("")
    assert not engine.uncommitted_changes(tmp_path)
    (tmp_path / files[0]).write_text("changed\n")
    assert engine.uncommitted_changes(tmp_path)


def test_code_hash_covers_the_package_and_its_yaml():
    names = {path.name for path in engine.code_files()}
    assert {"sppo.py", "losses.py", "noise.py", "sppo.yml", "sa2c.yml"} <= names


@pytest.mark.parametrize(
    "args, message",
    [
        (["--preset", "classic", "--envs", "CartPol"], "--envs 'CartPol' is not in preset 'classic'"),
        (["--preset", "classic", "--algos", "ppo2"], "--algos 'ppo2' is not in preset 'classic'"),
        (["--preset", "classic", "--seeds", "0"], "--seeds must be at least 1"),
        (["--preset", "clasic"], "unknown preset 'clasic'"),
        (["--preset", "classic", "--budget-scale", "0"], "--budget-scale must be a positive number"),
        (["--worker", "--storage", "/nonexistent/x.log", "--study-name", "s"], "no grid storage at"),
    ],
)
def test_bad_arguments_are_clear_errors(tmp_path, args, message):
    done = grid(*args, "--work-dir", str(tmp_path))
    assert done.returncode == 2 and message in done.stderr, done.stderr[-2000:]
    assert not list(tmp_path.iterdir())


def test_messages_and_resume_commands_hide_the_database_password():
    url = "postgresql://user:s3cret@db.example:5432/grid"
    assert engine.shown(f"python -m benchmarks.grid --storage {url}", url) == (
        "python -m benchmarks.grid --storage postgresql://user:***@db.example:5432/grid"
    )
    assert engine.shown("at runs/grid.log", "runs/grid.log") == "at runs/grid.log"


def test_report_refuses_to_overwrite_committed_results(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.report", "--preset", "classic", "--out", "benchmarks/results"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "holds committed results; pass --overwrite" in done.stderr


@pytest.mark.parametrize("env", ["CartPole-v1", "LunarLander-v3"])
def test_robustness_sweep_is_grid_runs_with_shared_configurations(tmp_path, env):
    import torch as th
    from torch import nn  # noqa: F401  (names the generated policy_kwargs use)

    from benchmarks import robustness

    configs = robustness.sample_configs(3, seed=0)
    runs = robustness.plan_runs([env], configs, {env: 2000}, 0.1, 7, 10)
    algos = ("ppo", "sppo", "ppo_equiv")
    assert [(run.algo, run.seed) for run in runs] == [(algo, 7 + k) for k in range(3) for algo in algos]
    setting = robustness.ENVS[env]
    for k in range(3):
        folder = tmp_path / str(k)
        ppo, sppo, equiv = (_params(engine.zoo_argv(run, folder)) for run in runs[3 * k : 3 * k + 3])
        assert (ppo["algo"], sppo["algo"], equiv["algo"]) == ("ppo", "sppo", "ppo")
        assert all({key: params[key] for key in configs[k]} == configs[k] for params in (ppo, sppo, equiv))
        assert ppo["n_envs"] == sppo["n_envs"] == equiv["n_envs"] == setting.n_envs
        assert ppo["callback"] == sppo["callback"] == equiv["callback"]
        assert (sppo["alpha"], sppo["beta"], sppo["rce_z"]) == (0.5, 1.0, -1.0) and "alpha" not in ppo
        # the equivalent: sppo.yml's entry with the four knobs divided by w = 0.5 + 1 * |-1|, then the sweep's values
        entry = yaml.safe_load((folder / "conf.yml").read_text())[env]
        entry.update({key: value for key, value in equiv.items() if key not in ("algo", "conf")})
        sppo_entry = engine.zoo_entry("sppo", env)
        assert entry["ent_coef"] == pytest.approx(setting.ent_coef / 1.5, rel=1e-15)
        assert entry["vf_coef"] == pytest.approx(sppo_entry.get("vf_coef", 0.5) / 1.5, rel=1e-15)
        assert entry["max_grad_norm"] == pytest.approx(sppo_entry.get("max_grad_norm", 0.5) / 1.5, rel=1e-15)
        policy_kwargs = eval(entry["policy_kwargs"])
        assert policy_kwargs["optimizer_class"] is th.optim.Adam
        assert policy_kwargs["optimizer_kwargs"]["eps"] == pytest.approx(1e-5 / 1.5, rel=1e-15)
        assert "alpha" not in entry and "beta" not in entry
    keys = {engine.run_key(run, engine.code_version()) for run in runs}
    assert len(keys) == len(runs)


def test_robustness_report_sets_sppo_against_ppo_beside_its_noise_floor(tmp_path):
    """The report from the study (``--report-only``): finished runs stored as the worker stores them, no training."""
    from benchmarks import robustness

    finals = {"ppo": [100.0, 200.0, 500.0], "sppo": [150.0, 180.0, 500.0], "ppo_equiv": [140.0, 180.0, 470.0]}
    storage = str(tmp_path / "runs.log")
    argv = ["--k", "3", "--envs", "CartPole-v1", "--steps", "CartPole-v1=2000", "--out", str(tmp_path), "--storage", storage]
    configs = robustness.sample_configs(3, seed=0)
    runs = robustness.plan_runs(["CartPole-v1"], configs, {"CartPole-v1": 2000}, 0.1, 0, 10)
    study = engine.open_study(storage, robustness.STUDY, create=True)
    code = engine.code_version()
    engine.enqueue(study, runs, code)
    for _ in runs:
        trial = engine._take(study)
        run = trial.user_attrs[engine.RUN_ATTR]
        value = finals[run["algo"]][run["seed"]]
        study._storage.set_trial_user_attr(trial._trial_id, engine.RESULT_ATTR, {"final_return": value, "returns": [[value]]})
        study._storage.set_trial_state_values(trial._trial_id, state=engine._state("COMPLETE"), values=[value])
    assert robustness.main([*argv, "--report-only"]) == 0
    text = (tmp_path / "robustness.md").read_text()
    # SPPO - PPO: +50, -20, 0; SPPO - equivalent: +10, 0, +30
    assert "| CartPole-v1 | PPO | 3 | 1 | 1 | 20.0 | 50.0 |" in text
    assert "| CartPole-v1 | PPO (SPPO-equivalent) | 3 | 2 | 1 | 10.0 | 30.0 |" in text
    assert "| CartPole-v1 (>= 475) | PPO (SPPO-equivalent) | 3 | 0/3 (0%) | 180.0 |" in text
    assert "| 100.0 | 150.0 | 140.0 | +50.0 | +10.0 |" in text
    assert f"Code version {code['version']}+{code['hash']}; runs queued at: commit {code['commit'][:10]}" in text
    assert "w = alpha + beta*|rce_z| = 1.5" in text and (tmp_path / "robustness.png").stat().st_size > 0


def test_robustness_draws_the_configurations_of_its_first_runs_from_its_data_file():
    """The search space moved from code to robustness.yml: seed 0 still draws what the first sweep's runs recorded."""
    from benchmarks import robustness

    assert robustness.sample_configs(2, seed=0) == [
        {"learning_rate": 0.0008727093859002809, "clip_range": 0.3, "n_epochs": 5, "batch_size": 64},
        {"learning_rate": 0.00010578237701278475, "clip_range": 0.1, "n_epochs": 1, "batch_size": 256},
    ]
    assert [type(value) for value in robustness.sample_configs(1, seed=3)[0].values()] == [float, float, int, int]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"search_space": {"learning_rate": {"log_uniform": [3.0e-3, 1.0e-4]}}}, "search_space.learning_rate is"),
        ({"search_space": {"n_epochs": {"uniform": [1, 20]}}}, "search_space.n_epochs is"),
        ({"envs": {"CartPole-v1": {"n_envs": 8}}}, "envs.CartPole-v1 needs exactly"),
        ({"symmetric": {"alpha": 0.5, "beta": 1.0}}, "symmetric needs alpha, beta and rce_z"),
        ({"budgets": {}}, "needs exactly the sections"),
    ],
)
def test_robustness_data_file_errors_name_the_entry(tmp_path, change, message):
    from benchmarks import robustness

    data = yaml.safe_load(robustness.SETTINGS.read_text())
    data.update(change)
    path = tmp_path / "robustness.yml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match=message):
        robustness.load_settings(path)


def test_runs_of_dead_or_nameless_workers_go_back_to_the_queue(tmp_path, monkeypatch):
    """No training: a trial taken by a process that is gone, and one taken by nobody named, are re-queued once."""
    from sb3_symmetric import tuning

    study = engine.open_study(str(tmp_path / "grid.log"), "g", create=True)
    runs = [engine.Run("ppo", "CartPole-v1", "clean", seed, 2000, 5, 5) for seed in range(3)]
    keys, added = engine.enqueue(study, runs)
    assert added == 3 and engine.enqueue(study, runs)[1] == 0
    dead = subprocess.Popen(["true"])
    dead.wait()
    taken = [engine._take(study) for _ in range(2)]
    record = {**tuning.worker_record(taken[0].number), "pid": dead.pid, "started": "1"}
    study._storage.set_trial_user_attr(taken[0]._trial_id, tuning.WORKER_ATTR, record)
    nameless = study._pop_waiting_trial_id()  # a worker that died before naming itself
    assert engine._recover(study) == [taken[0].number]  # the nameless one is young: it may still name itself
    monkeypatch.setattr(engine, "ORPHAN_S", 0.0)
    assert engine._recover(study) == [study._storage.get_trial(nameless).number]
    counts = engine.progress(study, keys)
    assert counts == {"total": 3, "finished": 0, "running": 1, "waiting": 2, "failed": 0}
    assert engine.enqueue(study, runs)[1] == 0  # a re-queued run is not queued twice


def test_report_names_the_entry_each_budget_comes_from():
    """Stock baselines name their -conf file, the stock-PPO equivalent the entry it was generated from."""
    from benchmarks import report

    runs = [engine.Run(algo, "CartPole-v1", "clean", 0, 20_000, 5, 5).to_dict() for algo in ("ppo_equiv", "sppo")]
    runs.append(engine.Run("ppo", "MinAtar/Breakout-v1", "clean", 0, 200_000, 5, 5).to_dict())
    line = report.budget_comparison({("a", "b", "c"): runs})
    sppo_budget = f"{int(float(engine.zoo_entry('sppo', 'CartPole-v1')['n_timesteps'])):,}"
    # entries with the same budget share one mention of the env
    assert f"CartPole-v1 20,000 (ppo generated from sppo.yml, sppo.yml: {sppo_budget})" in line
    assert line.count("CartPole-v1") == 1
    assert "MinAtar/Breakout-v1 200,000 (benchmarks/hyperparams/ppo.yml: 5,000,000)" in line
    assert "no entry" not in line


def test_incomplete_training_is_not_a_finished_run(tmp_path):
    """RL-Zoo saves the model when interrupted: the step count, not the exit status, says whether a run finished."""
    import io
    import json
    import zipfile

    import numpy as np

    run = engine.Run("ppo", "CartPole-v1", "clean", 0, 2000, 5, 2)
    folder = tmp_path / "zoo" / "ppo" / "CartPole-v1_1"
    folder.mkdir(parents=True)
    np.savez(folder / "evaluations.npz", timesteps=[400, 800], results=[[1.0, 2.0], [3.0, 5.0]], ep_lengths=[[1, 2], [3, 5]])
    for trained, finished in ((1024, False), (2048, True)):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("data", json.dumps({"num_timesteps": trained}))
        (folder / "CartPole-v1.zip").write_bytes(buffer.getvalue())
        result = engine.read_result(tmp_path, run)
        assert (result is not None) == finished
    assert result["final_return"] == 4.0 and result["timesteps"] == [400, 800]


# ---------------------------------------------------------------- slow: real workers, kills, interrupts, resume


@pytest.mark.slow
def test_journal_grid_killed_worker_and_ctrl_c_resume_exactly_once(tmp_path, reference):
    """``grid --workers 2``: SIGKILL one worker mid-run (replaced), then Ctrl-C the whole group; resume finishes."""
    storage, work_dir = str(tmp_path / "grid.log"), tmp_path / "work"
    command = [*GRID, "--workers", "2", "--storage", storage, "--work-dir", str(work_dir)]
    parent = start(command, tmp_path, "grid")
    try:
        interrupt_grid(parent, storage, work_dir, tmp_path)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
    resume_and_compare(storage, work_dir, tmp_path, reference)


def interrupt_grid(parent: subprocess.Popen, storage: str, work_dir: Path, tmp_path: Path) -> None:
    study = wait_for(lambda: study_when_created(storage), 120, "the study")
    wait_for(lambda: running_trials(study) and training_children(work_dir), 180, "a training run")
    victim = running_trials(study)[0].user_attrs["worker"]["pid"]
    victim_run = identities(wait_for(lambda: children_of(victim), 60, "the victim's training child"))
    time.sleep(3)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: not [run for run in victim_run if still_running(run)] or None, 30, "the victim's run to die")

    def alive() -> list:
        return [t for t in running_trials(study) if t.user_attrs["worker"]["pid"] != victim]

    wait_for(lambda: len(alive()) == 2, 180, "the killed worker's replacement and run to start")
    time.sleep(3)
    os.killpg(parent.pid, signal.SIGINT)  # Ctrl-C in the terminal: the whole foreground group
    assert parent.wait(timeout=120) == engine.EXIT_INTERRUPTED
    output = (tmp_path / "grid.out").read_text()
    assert "was killed by signal 9" in output and "Resume with:" in output and "benchmarks.grid --preset classic" in output
    wait_for(lambda: not processes_mentioning(str(work_dir)), 30, "every worker and run to be gone")
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    assert states.count("COMPLETE") < N_RUNS and "RUNNING" not in states  # interrupted runs went back to the queue


def resume_and_compare(storage: str, work_dir: Path, tmp_path: Path, reference) -> None:
    resumed = grid(*GRID, "--workers", "1", "--storage", storage, "--work-dir", str(work_dir), timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert_all_finished_once(engine.open_study(storage, "classic", create=False))
    assert report_rows(storage, tmp_path / "report") == reference

    again = grid(*GRID, "--enqueue-only", "--storage", storage)
    assert again.returncode == 0 and ", 0 newly queued" in again.stdout and f"{N_RUNS} finished" in again.stdout
    bigger = grid(*GRID[:-1], "0.2", "--enqueue-only", "--storage", storage)
    assert bigger.returncode == 0 and f", {N_RUNS} newly queued" in bigger.stdout and "0 finished" in bigger.stdout


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM], ids=lambda s: signal.Signals(s).name)
def test_signalling_the_grid_command_alone_stops_its_workers_and_requeues(tmp_path, sig):
    """
    A signal to the grid command's process only (``kill PID`` from another terminal, not Ctrl-C to the group).
    SIGKILL: its worker (death signal SIGTERM) puts the run back. SIGINT / SIGTERM: it stops its workers, says how to
    resume and exits 130. Either way the training dies and nothing is left running.
    """
    storage, work_dir = str(tmp_path / "grid.log"), tmp_path / "work"
    parent = start([*GRID, "--workers", "1", "--storage", storage, "--work-dir", str(work_dir)], tmp_path, "grid")
    try:
        study = wait_for(lambda: study_when_created(storage), 120, "the study")
        wait_for(lambda: running_trials(study) and training_children(work_dir), 180, "a training run")
        time.sleep(2)
        parent.send_signal(sig)
        status = parent.wait(timeout=60)
        if sig == signal.SIGKILL:
            assert status == -signal.SIGKILL
        else:
            assert status == engine.EXIT_INTERRUPTED
            assert "Resume with:" in (tmp_path / "grid.out").read_text()
        wait_for(lambda: not processes_mentioning(str(work_dir)) or None, 60, "the worker and its run to end")
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
    trials = study.get_trials(deepcopy=False)
    assert [t.state.name for t in trials].count("RUNNING") == 0
    assert sum(t.state.name == "WAITING" for t in trials) == N_RUNS
    assert any("interrupted by signal 15" in t.user_attrs.get("error", "") for t in trials)


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        yield url


@pytest.mark.slow
def test_postgres_two_workers_sigkill_and_sigint_then_restart(tmp_path, postgres_url, reference):
    """Two ``--worker`` processes (as on two machines) on a PostgreSQL study: SIGKILL one, SIGINT the other."""
    enqueued = grid(*GRID, "--enqueue-only", "--storage", postgres_url)
    assert enqueued.returncode == 0 and f"{N_RUNS} newly queued" in enqueued.stdout, enqueued.stderr[-2000:]
    study = engine.open_study(postgres_url, "classic", create=False)
    join = ["--worker", "--workers", "1", "--storage", postgres_url, "--study-name", "classic"]
    workers = [start([*join, "--work-dir", str(tmp_path / f"work{k}")], tmp_path, f"worker{k}") for k in range(2)]
    wait_for(
        lambda: len(running_trials(study)) == 2 and all(training_children(tmp_path / f"work{k}") for k in range(2)),
        180,
        "both workers training",
    )
    time.sleep(3)
    killed_child = identities(training_children(tmp_path / "work0"))
    workers[0].send_signal(signal.SIGKILL)
    os.killpg(workers[1].pid, signal.SIGINT)
    assert workers[0].wait(timeout=30) == -signal.SIGKILL
    assert workers[1].wait(timeout=120) == engine.EXIT_INTERRUPTED
    wait_for(lambda: not processes_mentioning(str(tmp_path / "work")), 30, "no run left behind")
    assert killed_child and not any(still_running(run) for run in killed_child)
    trials = study.get_trials(deepcopy=False)
    assert [t.state.name for t in trials].count("COMPLETE") == 0
    assert sum(t.state.name == "RUNNING" for t in trials) == 1  # the killed worker's, until someone notices
    assert sum(t.state.name == "WAITING" for t in trials) == N_RUNS - 1  # the interrupted run is back in the queue

    restarted = grid(*join, "--work-dir", str(tmp_path / "work2"), timeout=900)
    assert restarted.returncode == 0, restarted.stdout[-2000:] + restarted.stderr[-3000:]
    assert_all_finished_once(study)
    assert report_rows(postgres_url, tmp_path / "report") == reference


def test_a_journal_rewritten_under_the_grid_is_one_line_naming_it(tmp_path):
    """A journal with a line that is not JSON (git stash under running workers did that once): one line, exit 1."""
    storage = tmp_path / "grid.log"
    assert grid(*GRID, "--enqueue-only", "--storage", str(storage)).returncode == 0
    lines = storage.read_bytes().splitlines(keepends=True)
    storage.write_bytes(lines[0] + b'{"op_code": 6, "trial_id"\n' + b"".join(lines[1:]))
    for args in (
        [*GRID, "--storage", str(storage)],
        ["--worker", "--storage", str(storage), "--study-name", "classic", "--work-dir", str(tmp_path / "work")],
    ):
        done = grid(*args, timeout=120)
        assert done.returncode == 1, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith(f"benchmarks.grid: error: the journal file {str(storage)!r} holds a line that is not JSON")
        assert "rerun the same command" in line


def test_a_worker_that_stops_on_an_error_is_reported_with_its_last_line(tmp_path):
    log = tmp_path / "worker0.log"
    assert engine._last_line(log) == "(empty log)"
    log.write_text("training...\nbenchmarks.grid: error: the database went away\n\n")
    assert engine._last_line(log) == "benchmarks.grid: error: the database went away"


@pytest.mark.parametrize("when", ["before", "during"])
def test_a_run_is_not_made_with_code_that_changed_on_disk(tmp_path, monkeypatch, when):
    """Each run's process imports the package from disk: an edit under a running grid must not enter its runs."""
    storage = str(tmp_path / "grid.log")
    study = engine.open_study(storage, "g", create=True)
    engine.enqueue(study, [engine.Run("ppo", "CartPole-v1", "clean", 0, 2000, 5, 5)])
    monkeypatch.setattr(engine.signal, "signal", lambda *args: None)  # work() would take over pytest's Ctrl-C
    trained = []

    def train_in_child(argv, log_path, stop):
        trained.append(argv)
        monkeypatch.setattr(engine, "code_hash", lambda: "edited-on-disk")
        return 0

    monkeypatch.setattr(engine, "train_in_child", train_in_child)
    if when == "before":
        monkeypatch.setattr(engine, "code_hash", lambda: "edited-on-disk")
    messages: list[str] = []
    assert engine.work(storage, "g", tmp_path / "work", log=messages.append) == 2
    assert len(trained) == (1 if when == "during" else 0)
    expected = "changed on disk while" if when == "during" else "this worker's code is 0.1.0+edited-on-disk"
    assert expected in messages[-1], messages
    counts = engine.progress(engine.open_study(storage, "g", create=False))
    assert (counts["finished"], counts["running"], counts["waiting"]) == (0, 0, 1)


def test_make_results_regenerates_every_committed_result():
    """`make results` regenerates every committed results folder, each grid on a study kept in benchmarks/studies/."""
    import re

    done = subprocess.run(["make", "-s", "-n", "results", "STAMP="], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = done.stdout.replace("\\\n", " ")
    (looped,) = re.findall(r"for grid in ([^;]+);", text)
    grids = looped.split()
    elsewhere = dict(re.findall(r"if \[ \$grid = (\S+) \]; then report=([^;]+);", text))  # classic: benchmarks/results
    reports = {elsewhere.get(grid, f"benchmarks/results/{grid}") for grid in grids}
    reports |= set(re.findall(r"--report (\S+) --overwrite", text)) - {"$report"}
    committed = {
        path.parent.relative_to(ROOT).as_posix()
        for path in (ROOT / "benchmarks" / "results").rglob("results.md")
        if "robustness" not in path.parts
    }
    assert reports == committed
    assert set(grids) | {"classic", "atari-smoke", "mujoco-smoke"} <= set(engine.PRESETS)
    for line in text.splitlines():
        if "benchmarks.grid" in line or "benchmarks.robustness" in line:
            assert "--storage benchmarks/studies/" in line, line
    assert "benchmarks.robustness" in text and (ROOT / "benchmarks" / "results" / "robustness" / "robustness.md").exists()


def test_report_marks_the_probabilities_whose_interval_excludes_one_half():
    """Bold where two algorithms' runs separate; the knob ablations are compared with stock PPO when they ran."""
    from benchmarks import report

    def runs(finals):
        return [
            dict(budget=1000, curve=[0.0, final], seed=seed, wall_s=1.0, discretized=False)
            for seed, final in enumerate(finals)
        ]

    cells = {
        ("clean", "CartPole-v1", "ppo"): runs([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        ("clean", "CartPole-v1", "sppo"): runs([11.0, 12.0, 13.0, 14.0, 15.0, 16.0]),
        ("clean", "CartPole-v1", "ppo_equiv"): runs([12.5, 11.5, 14.5, 13.5, 16.5, 15.5]),
        ("clean", "CartPole-v1", "ppo_vf"): runs([1.5, 2.5, 3.5, 4.5, 5.5, 6.5]),
    }
    text, _ = report.tables(cells, reps=200)
    header = next(line for line in text.splitlines() if line.startswith("| env | P("))
    row = text.splitlines()[text.splitlines().index(header) + 2]
    columns = dict(zip(header.strip("|").split(" | ")[1:], row.strip("|").split(" | ")[1:], strict=True))
    columns = {name.strip(): value.strip() for name, value in columns.items()}
    assert columns["P(SPPO > PPO)"].startswith("**1.00 [1.00, 1.00]**")
    assert not columns["P(SPPO > PPO (SPPO-equivalent))"].startswith("**")
    assert columns["P(PPO, vf_coef/w > PPO)"].startswith("0.") and "**" not in columns["P(PPO, vf_coef/w > PPO)"]
    assert columns["P(PPO (SPPO-equivalent) > PPO)"].startswith("**1.00")
    assert report.probability_text(0.3, 0.1, 0.49) == "**0.30 [0.10, 0.49]**"
    assert report.probability_text(0.5, 0.2, 0.5) == "0.50 [0.20, 0.50]"


def test_report_counts_the_sppo_runs_that_made_their_twins_very_evaluations():
    from benchmarks import report

    code = {"version": "0.1.0", "hash": "abc", "libraries": {}}

    def run(algo, seed, returns, setting="clean", budget=1000):
        return dict(code=code, algo=algo, seed=seed, returns=returns, setting=setting, env="CartPole-v1", budget=budget)

    records = [
        run("sppo", 0, [[1.0, 2.0], [3.0, 4.0]]),
        run("ppo_weighted", 0, [[1.0, 2.0], [3.0, 4.0]]),
        run("sppo", 1, [[1.0, 2.0], [3.0, 4.0]]),
        run("ppo_weighted", 1, [[1.0, 2.0], [3.0, 4.5]]),  # one evaluation episode apart
        run("sppo", 2, [[5.0]], setting="flip0.1"),
        run("ppo_weighted", 2, [[5.0]]),  # another cell: no pair
        run("ppo_equiv", 0, [[1.0, 2.0], [3.0, 4.0]]),  # not the twin
    ]
    assert report.identical_twin_runs(records) == (1, 2)
    assert report.identical_twin_runs([r for r in records if r["algo"] != "ppo_weighted"]) == (0, 0)
