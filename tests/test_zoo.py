"""
The real ``rl_zoo3`` command with ``--algo sppo`` / ``--algo sa2c``, from a wheel installed into a fresh venv.

The wheel is built once per session and installed non-editable (so the ``.pth`` start-up hook and the packaged
YAML files are tested as a user gets them). The fresh venvs borrow the dependencies of the running environment
through a path-only ``.pth`` file: paths added that way do not run the ``.pth`` files they contain, so the
running environment's own (editable) sb3-symmetric and its hook stay invisible. ``bare`` has no sb3-symmetric
at all: it is the "before" of the ``--algo ppo`` comparison.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import pickle
import shutil
import subprocess
import sys
import sysconfig
import venv
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
import torch as th
import yaml

pytest.importorskip("rl_zoo3")

REPO = Path(__file__).resolve().parents[1]
HOOK = "_sb3_symmetric_zoo_hook"
# small runs: a few thousand steps, one thread, no rendering
TRAIN = ["--num-threads", "1", "--seed", "0", "-f", "logs"]


@dataclass
class Venv:
    python: Path
    site_packages: Path
    deps: list[str]

    @property
    def rl_zoo3(self) -> str:
        return str(self.python.parent / "rl_zoo3")


def make_venv(path: Path, wheel: Path | None) -> Venv:
    venv.create(path, with_pip=False, symlinks=os.name != "nt")
    python = path / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site_packages = Path(
        subprocess.check_output([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip()
    )
    if wheel is not None:
        # before the dependencies become visible, so pip never sees (or touches) the running env's sb3-symmetric
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel], check=True
        )
    deps = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    (site_packages / "zz_test_dependencies.pth").write_text("\n".join(deps) + "\n")
    # the `rl_zoo3` console script, as pip writes it for this interpreter
    entry_point = next(iter(metadata.entry_points(group="console_scripts", name="rl_zoo3")))
    module, function = entry_point.value.split(":")
    script = python.parent / "rl_zoo3"
    script.write_text(f"#!{python}\nimport sys\nfrom {module} import {function}\nsys.exit({function}())\n")
    script.chmod(0o755)
    return Venv(python, site_packages, deps)


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    # build from a copy: an in-tree build would leave build/ and *.egg-info behind and race with other builds
    source = tmp_path_factory.mktemp("source") / "sb3-symmetric"
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "logs", "benchmarks", "__pycache__", ".*_cache"
        ),
    )
    dist = tmp_path_factory.mktemp("dist")
    # build with the running env's setuptools when it has one (offline); otherwise pip fetches it for an isolated build
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", dist, source], check=True)
    (built,) = dist.glob("sb3_symmetric-*.whl")
    return built


@pytest.fixture(scope="session")
def zoo_venv(wheel, tmp_path_factory) -> Venv:
    return make_venv(tmp_path_factory.mktemp("venv-zoo") / "venv", wheel)


@pytest.fixture(scope="session")
def bare_venv(tmp_path_factory) -> Venv:
    return make_venv(tmp_path_factory.mktemp("venv-bare") / "venv", None)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("zoo-runs")


def run(command: list, cwd: Path, ok: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command outside the repo (so `python -m` cannot pick up the source tree); ok: assert it succeeds."""
    clean_env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    clean_env.update(OMP_NUM_THREADS="1", MPLBACKEND="Agg", SDL_VIDEODRIVER="dummy", **(env or {}))
    result = subprocess.run([str(part) for part in command], cwd=cwd, env=clean_env, capture_output=True, text=True)
    if ok:
        assert result.returncode == 0, f"{command} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def load_yaml(path: Path):
    return yaml.load(path.read_text(), Loader=yaml.UnsafeLoader)


def test_register_is_idempotent_and_only_redirects_our_defaults(tmp_path):
    import rl_zoo3
    from rl_zoo3.exp_manager import ExperimentManager

    from sb3_symmetric import SymA2C, SymPPO, zoo

    zoo.register()
    init = ExperimentManager.__init__
    zoo.register()
    assert ExperimentManager.__init__ is init
    assert (rl_zoo3.ALGOS["sppo"], rl_zoo3.ALGOS["sa2c"]) == (SymPPO, SymA2C)
    paths = {
        (algo, conf): ExperimentManager(argparse.Namespace(), algo, "CartPole-v1", str(tmp_path), config=conf).config
        for algo in ("ppo", "sppo")
        for conf in (None, "mine.yml")
    }
    assert paths == {
        ("ppo", None): str(Path(rl_zoo3.__file__).parent / "hyperparams" / "ppo.yml"),
        ("ppo", "mine.yml"): "mine.yml",
        ("sppo", None): str(zoo.hyperparams_file("sppo")),
        ("sppo", "mine.yml"): "mine.yml",
    }


def test_entry_point_usage(capsys):
    from sb3_symmetric import zoo

    zoo.main(["--help"])
    assert "commands: train, enjoy, plot_train" in capsys.readouterr().out
    for argv, error in (([], "no command given"), (["bogus"], "unknown command 'bogus'")):
        with pytest.raises(SystemExit) as exit_info:
            zoo.main(argv)
        assert exit_info.value.code == 2
        assert error in capsys.readouterr().err


def test_wheel_ships_hook_and_yaml(zoo_venv):
    assert (zoo_venv.site_packages / "sb3_symmetric_zoo_hook.pth").read_text().startswith(f"import {HOOK};")
    assert (zoo_venv.site_packages / f"{HOOK}.py").is_file()
    for algo in ("sppo", "sa2c"):
        assert (zoo_venv.site_packages / "sb3_symmetric" / "hyperparams" / f"{algo}.yml").is_file()


def test_hook_waits_for_rl_zoo3_then_registers_and_leaves(zoo_venv, workdir):
    check = f"""
import sys
from {HOOK} import RLZooImportHook
assert sys.meta_path[0] is RLZooImportHook
assert not {{"torch", "sb3_symmetric", "rl_zoo3"}} & set(sys.modules), "start-up must import nothing heavy"
import rl_zoo3
assert RLZooImportHook not in sys.meta_path
assert type(rl_zoo3.__loader__) is type(rl_zoo3.__spec__.loader) and "Register" not in type(rl_zoo3.__loader__).__name__
from rl_zoo3.utils import ALGOS
from rl_zoo3.hyperparams_opt import HYPERPARAMS_SAMPLER
import sb3_symmetric
print(ALGOS["sppo"].__name__, ALGOS["sa2c"].__name__, "sppo" in HYPERPARAMS_SAMPLER, sb3_symmetric.__file__)
"""
    out = run([zoo_venv.python, "-c", check], workdir).stdout.split()
    assert out[:3] == ["SymPPO", "SymA2C", "True"]
    assert Path(out[3]).is_relative_to(zoo_venv.site_packages), "the wheel, not the source tree, must be imported"


@pytest.fixture(scope="module")
def sppo_cartpole(zoo_venv, workdir) -> Path:
    args = ["train", "--algo", "sppo", "--env", "CartPole-v1", "-n", "2048", "--eval-freq", "1024", "--eval-episodes", "2"]
    result = run([zoo_venv.rl_zoo3, *args, *TRAIN], workdir)
    packaged_yaml = zoo_venv.site_packages / "sb3_symmetric" / "hyperparams" / "sppo.yml"
    assert f"Loading hyperparameters from: {packaged_yaml}" in result.stdout
    return workdir / "logs" / "sppo" / "CartPole-v1_1"


def test_train_sppo_cartpole(sppo_cartpole):
    assert (sppo_cartpole / "CartPole-v1.zip").is_file()
    assert (sppo_cartpole / "evaluations.npz").is_file()
    config = load_yaml(sppo_cartpole / "CartPole-v1" / "config.yml")
    assert (config["alpha"], config["beta"], config["rce_z"]) == (0.5, 1.0, -1.0)
    assert config["n_envs"] == 8


def test_enjoy_sppo_cartpole(zoo_venv, workdir, sppo_cartpole):
    args = ["enjoy", "--algo", "sppo", "--env", "CartPole-v1", "-f", "logs", "--no-render", "-n", "200"]
    result = run([zoo_venv.rl_zoo3, *args], workdir)
    assert "Loading logs/sppo/CartPole-v1_1/CartPole-v1.zip" in result.stdout


def test_plots_of_sppo_logs(zoo_venv, workdir, sppo_cartpole):
    run([zoo_venv.rl_zoo3, "plot_train", "-a", "sppo", "-e", "CartPole-v1", "-f", "logs", "-w", "5"], workdir)
    args = ["all_plots", "-a", "sppo", "-e", "CartPole-v1", "-f", "logs", "--no-display", "-o", "all_plots"]
    result = run([zoo_venv.rl_zoo3, *args], workdir)
    assert "SPPO" in result.stdout
    with open(workdir / "all_plots.pkl", "rb") as file:
        curves = pickle.load(file)["CartPole-v1"]["SPPO-logs"]
    assert list(curves["timesteps"]) == [1024, 2048]


def test_record_video_of_sppo(zoo_venv, workdir, sppo_cartpole):
    pytest.importorskip("moviepy")
    args = ["--algo", "sppo", "--env", "CartPole-v1", "-f", "logs", "-n", "20", "-o", "videos"]
    run([zoo_venv.python, "-m", "rl_zoo3.record_video", *args], workdir)
    assert list((workdir / "videos").glob("final-model-sppo-CartPole-v1-*.mp4"))


def test_train_and_enjoy_sa2c_cartpole(zoo_venv, workdir):
    args = ["train", "--algo", "sa2c", "--env", "CartPole-v1", "-n", "2000", "--eval-freq", "-1"]
    run([zoo_venv.rl_zoo3, *args, *TRAIN], workdir)
    config = load_yaml(workdir / "logs" / "sa2c" / "CartPole-v1_1" / "CartPole-v1" / "config.yml")
    assert (config["alpha"], config["beta"], config["rce_z"]) == (0.5, 1.0, -1.0)
    args = ["enjoy", "--algo", "sa2c", "--env", "CartPole-v1", "-f", "logs", "--no-render", "-n", "200"]
    assert "Loading logs/sa2c/CartPole-v1_1/CartPole-v1.zip" in run([zoo_venv.rl_zoo3, *args], workdir).stdout


def test_train_and_enjoy_sppo_pendulum_through_discretize_wrapper(zoo_venv, workdir):
    from sb3_symmetric import SymPPO

    # -params keeps the run tiny: two rollouts of 128 steps x 4 envs
    args = ["train", "--algo", "sppo", "--env", "Pendulum-v1", "-n", "1024", "--eval-freq", "-1", "-params", "n_steps:128"]
    run([zoo_venv.rl_zoo3, *args, *TRAIN], workdir)
    run_dir = workdir / "logs" / "sppo" / "Pendulum-v1_1"
    config = load_yaml(run_dir / "Pendulum-v1" / "config.yml")
    assert config["env_wrapper"] == [{"sb3_symmetric.DiscretizeAction": {"n_bins": 11}}]
    model = SymPPO.load(run_dir / "Pendulum-v1.zip", device="cpu")
    assert list(model.action_space.nvec) == [11]
    args = ["enjoy", "--algo", "sppo", "--env", "Pendulum-v1", "-f", "logs", "--no-render", "-n", "200"]
    result = run([zoo_venv.rl_zoo3, *args], workdir)
    # Pendulum episodes last exactly 200 steps: enjoy must have played one through the wrapper and scored it
    assert "Episode Length 200" in result.stdout
    assert "Mean reward:" in result.stdout


def test_box_env_without_discretization_fails_with_the_core_error(zoo_venv, workdir):
    user_conf = workdir / "my_pendulum.yml"
    user_conf.write_text("Pendulum-v1:\n  n_timesteps: 1000\n  policy: MlpPolicy\n")
    args = ["train", "--algo", "sppo", "--env", "Pendulum-v1", "-conf", user_conf, "--eval-freq", "-1", "-f", "logs-error"]
    result = run([zoo_venv.rl_zoo3, *args], workdir, ok=False)
    assert result.returncode != 0
    assert f"Loading hyperparameters from: {user_conf}" in result.stdout
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ValueError: SymPPO needs a discrete action space; got Box(")
    assert "DiscretizeAction" in last_line


def test_ppo_is_unchanged_by_the_hook(zoo_venv, bare_venv, workdir):
    from stable_baselines3 import PPO

    runs = {}
    for name, env in (("bare", bare_venv), ("zoo", zoo_venv)):
        folder = workdir / f"ppo-{name}"
        args = ["train", "--algo", "ppo", "--env", "CartPole-v1", "-n", "512", "--eval-freq", "-1", "--num-threads", "1"]
        result = run([env.rl_zoo3, *args, "--seed", "3", "-f", folder], workdir)
        runs[name] = (result.stdout, folder / "ppo" / "CartPole-v1_1")
    (bare_out, bare_dir), (zoo_out, zoo_dir) = runs["bare"], runs["zoo"]
    config_lines = [line for line in bare_out.splitlines() if line.startswith("Loading hyperparameters from:")]
    assert config_lines and config_lines[0] in zoo_out and "rl_zoo3" in config_lines[0]
    assert (zoo_dir / "CartPole-v1" / "config.yml").read_text() == (bare_dir / "CartPole-v1" / "config.yml").read_text()
    bare_args, zoo_args = (load_yaml(d / "CartPole-v1" / "args.yml") for d in (bare_dir, zoo_dir))
    assert {**bare_args, "log_folder": None} == {**zoo_args, "log_folder": None}
    bare_params, zoo_params = (PPO.load(d / "CartPole-v1.zip", device="cpu").policy.state_dict() for d in (bare_dir, zoo_dir))
    assert bare_params.keys() == zoo_params.keys()
    assert all(th.equal(bare_params[key], zoo_params[key]) for key in bare_params)


def test_explicit_entry_point_works_where_pth_files_are_skipped(zoo_venv, workdir):
    # `python -S` runs no .pth file: the hook is off, as in set-ups that disable such hooks
    no_site = {"PYTHONPATH": os.pathsep.join([str(zoo_venv.site_packages), *zoo_venv.deps])}
    args = ["train", "--algo", "sppo", "--env", "CartPole-v1", "-n", "256", "--eval-freq", "-1", "--num-threads", "1"]
    plain = run([zoo_venv.python, "-S", "-m", "rl_zoo3.cli", *args, "-f", "logs-no-site"], workdir, ok=False, env=no_site)
    assert plain.returncode != 0 and "invalid choice: 'sppo'" in plain.stderr
    run([zoo_venv.python, "-S", "-m", "sb3_symmetric.zoo", *args, "-f", "logs-no-site"], workdir, env=no_site)
    assert (workdir / "logs-no-site" / "sppo" / "CartPole-v1_1" / "CartPole-v1.zip").is_file()


def test_trial_id_replays_an_optuna_trial(zoo_venv, workdir):
    optuna = pytest.importorskip("optuna")
    study = ["--storage", "study.log", "--study-name", "sa2c-cartpole"]
    # SymA2C and one env: a sampled trial costs one update per rollout of at most 2048 steps (SymPPO's sampled
    # n_steps x n_epochs can cost minutes)
    tiny = ["--algo", "sa2c", "--env", "CartPole-v1", "-n", "512", "-params", "n_envs:1", "--num-threads", "1", "--seed", "0"]
    optimize = ["-optimize", "--n-trials", "2", "--n-evaluations", "1", "--eval-episodes", "2", "--no-optim-plots"]
    run([zoo_venv.rl_zoo3, "train", *tiny, *optimize, *study, "-f", "logs-optuna"], workdir)
    replay = [*tiny, "--eval-freq", "-1", *study, "--trial-id", "1", "-f", "logs-optuna"]
    assert "Loading from Optuna study..." in run([zoo_venv.rl_zoo3, "train", *replay], workdir).stdout
    run_dir = next((workdir / "logs-optuna" / "sa2c").glob("CartPole-v1_*"))
    config = load_yaml(run_dir / "CartPole-v1" / "config.yml")
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(workdir / "study.log")))
    trial = optuna.load_study(storage=storage, study_name="sa2c-cartpole").trials[1]
    assert (config["alpha"], config["beta"], config["rce_z"]) == tuple(trial.params[k] for k in ("alpha", "beta", "rce_z"))
