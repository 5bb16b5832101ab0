"""Optuna sweeps for sppo/sa2c: search spaces, trial replay, storages, and workers that get killed mid-trial.

The sweep tests run the real command (``rl_zoo3 train ... -optimize``) as worker processes
against journal, SQLite and PostgreSQL storages. The study is seeded with tiny enqueued configurations so each
trial takes a couple of seconds whatever the sampler would have drawn.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from postgres_fixtures import free_port, postgres_server
from waiting import wait_for

from sb3_symmetric import tuning, zoo

REPO_ROOT = Path(__file__).resolve().parent.parent
STUDY = "sweep"
TOTAL = 4
TRIAL_STEPS = 2048
# RL-Zoo PPO-space parameters small enough for a 2-second SymPPO trial on one core.
TINY_PPO_PARAMS = {
    "batch_size_pow": 6,
    "n_steps_pow": 8,
    "one_minus_gamma": 0.01,
    "one_minus_gae_lambda": 0.05,
    "learning_rate": 1e-3,
    "ent_coef": 1e-4,
    "clip_range": 0.2,
    "n_epochs": 1,
    "max_grad_norm": 0.5,
    "net_arch": "tiny",
    "activation_fn": "tanh",
}
TINY_CONF = "CartPole-v1:\n  n_envs: 1\n  n_timesteps: 2048\n  policy: 'MlpPolicy'\n"

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(autouse=True, scope="module")
def registered():
    zoo.register()


def tiny_params(index: int) -> dict:
    # A distinct learning rate per config makes every enqueued trial recognisable.
    return {**TINY_PPO_PARAMS, "learning_rate": 1e-3 * (1 + index / 10), "alpha": 0.5, "beta": 1.0, "rce_z": -1.0}


def create_seeded_study(storage: str, n_configs: int) -> None:
    study = optuna.create_study(storage=tuning.open_storage(storage), study_name=STUDY, direction="maximize")
    for index in range(n_configs):
        study.enqueue_trial(tiny_params(index))


def read_study(storage: str) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=tuning.open_storage(storage))


def zoo_train() -> list[str]:
    """The user's command: ``rl_zoo3 train`` when the start-up hook is installed, else the explicit entry point."""
    console_script = Path(sys.executable).parent / "rl_zoo3"
    if console_script.is_file() and importlib.util.find_spec("_sb3_symmetric_zoo_hook") is not None:
        return [str(console_script), "train"]
    return [sys.executable, "-m", "sb3_symmetric.zoo", "train"]


def worker_command(
    storage: str, log_folder: Path, conf: Path, seed: int, algo: str = "sppo", steps: int = TRIAL_STEPS
) -> list[str]:
    return [
        *zoo_train(), "--algo", algo, "--env", "CartPole-v1",
        "-optimize", "--max-total-trials", str(TOTAL), "--n-jobs", "1", "--storage", storage, "--study-name", STUDY,
        "-conf", str(conf), "--sampler", "random", "--pruner", "none", "--seed", str(seed),
        "-n", str(steps), "--n-evaluations", "1", "--eval-episodes", "2", "--num-threads", "1",
        "-f", str(log_folder), "--no-optim-plots",
    ]  # fmt: skip


def worker_env() -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO_ROOT),
        tuning.HEARTBEAT_ENV: "2",
    }


def start_worker(storage: str, tmp_path: Path, name: str, seed: int, steps: int = TRIAL_STEPS) -> subprocess.Popen:
    conf = tmp_path / "conf.yml"
    conf.write_text(TINY_CONF)
    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
    command = worker_command(storage, tmp_path / "logs", conf, seed, steps=steps)
    return subprocess.Popen(
        command,
        cwd=tmp_path,
        env=worker_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        # Ctrl-C as a terminal delivers it: a suite started as a shell's background job (nohup ... &) passes SIGINT
        # on ignored, and Python then never raises KeyboardInterrupt
        preexec_fn=_default_sigint,
    )


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def finished_snapshot(study: optuna.Study) -> dict[int, tuple]:
    return {
        trial.number: (trial.state, trial.value, trial.params) for trial in study.get_trials(states=tuning.FINISHED_STATES)
    }


def owned_running_trial(study: optuna.Study, pid: int) -> int | None:
    for trial in study.get_trials(states=(TrialState.RUNNING,)):
        if trial.user_attrs.get(tuning.WORKER_ATTR, {}).get("pid") == pid:
            return trial.number
    return None


def wait_workers(workers: list[subprocess.Popen], tmp_path: Path, timeout: float = 300) -> None:
    for worker in workers:
        try:
            worker.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            worker.kill()
    logs = "\n".join(path.read_text()[-3000:] for path in tmp_path.glob("*.log"))
    assert all(worker.returncode == 0 for worker in workers), logs


def kill_and_resume(storage: str, tmp_path: Path) -> None:
    """Two workers; one is SIGKILLed mid-trial and restarted; the study must still reach TOTAL, losing nothing."""
    create_seeded_study(storage, TOTAL + 4)
    victim = start_worker(storage, tmp_path, "victim", seed=1)
    other = start_worker(storage, tmp_path, "other", seed=2)
    study = read_study(storage)

    def victim_mid_trial_after_a_finished_one():
        return len(finished_snapshot(study)) >= 1 and owned_running_trial(study, victim.pid) is not None

    wait_for(victim_mid_trial_after_a_finished_one, 240, "a finished trial and a running trial of the victim")
    killed = owned_running_trial(study, victim.pid)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    before = finished_snapshot(study)
    # RUNNING until a live worker notices; the other worker may already have failed it.
    assert {trial.number: trial.state for trial in study.get_trials()}[killed] in (TrialState.RUNNING, TrialState.FAIL)
    restarted = start_worker(storage, tmp_path, "restarted", seed=3)
    wait_workers([other, restarted], tmp_path)

    study = read_study(storage)
    after = finished_snapshot(study)
    assert TOTAL <= len(after) <= TOTAL + 1, after
    for number, record in before.items():
        assert after[number] == record, f"finished trial {number} changed or vanished"
    trials = {trial.number: trial for trial in study.get_trials()}
    assert trials[killed].state == TrialState.FAIL
    retried = [trial for trial in trials.values() if trial.system_attrs.get("failed_trial") == killed]
    assert len(retried) == 1, "the killed trial should be queued again exactly once"
    assert not study.get_trials(states=(TrialState.RUNNING,))


def test_kill_and_resume_journal(tmp_path):
    kill_and_resume(str(tmp_path / "study.log"), tmp_path)


def test_kill_and_resume_sqlite(tmp_path):
    kill_and_resume(f"sqlite:///{tmp_path / 'study.db'}", tmp_path)


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        yield url


def test_kill_and_resume_postgres(tmp_path, postgres_url):
    kill_and_resume(postgres_url, tmp_path)


def test_sa2c_sweep_without_storage_goes_to_the_default_journal_and_resumes(tmp_path):
    """--n-trials counts this worker's trials, as in RL-Zoo; a rerun adds to the same default study."""
    conf = tmp_path / "conf.yml"
    conf.write_text(TINY_CONF)
    command = worker_command("", tmp_path / "logs", conf, seed=0, algo="sa2c")
    for flag in ("--storage", "--study-name", "--max-total-trials"):
        del command[command.index(flag) : command.index(flag) + 2]
    study_file = tmp_path / "logs/sa2c/optuna/CartPole-v1.log"
    for n_trials, expected in ((2, 2), (1, 3)):
        result = subprocess.run(
            [*command, "--n-trials", str(n_trials)],
            cwd=tmp_path,
            env=worker_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        study = optuna.load_study(study_name="sa2c-CartPole-v1", storage=tuning.open_storage(str(study_file)))
        assert len(study.get_trials(states=tuning.FINISHED_STATES)) == expected
        assert {"alpha", "beta", "rce_z", "n_steps"} <= set(study.best_params)
    # RL-Zoo's report files: report_<env>_<n-trials>-trials-<steps>-<sampler>-<pruner>_<time>.{csv,pkl}
    reports = sorted((tmp_path / "logs" / "sa2c").glob("report_CartPole-v1_*"))
    assert {re.sub(r"_\d+\.", "_T.", path.name) for path in reports} == {
        f"report_CartPole-v1_{n}-trials-{TRIAL_STEPS}-random-none_T.{suffix}" for n in (1, 2) for suffix in ("csv", "pkl")
    }
    pickled = pickle.loads(
        max((path for path in reports if path.suffix == ".pkl"), key=lambda path: path.stat().st_mtime).read_bytes()
    )
    assert [trial.params for trial in pickled.trials] == [trial.params for trial in study.trials]
    assert [trial.value for trial in pickled.trials] == [trial.value for trial in study.trials]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the test asks for the foreign trial by hand
def test_stale_trial_of_another_machine_is_failed_by_heartbeat(tmp_path):
    """A RUNNING trial owned by a worker elsewhere is left alone until its heartbeat stops, then retried."""
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    create_seeded_study(storage, TOTAL + 3)
    study = optuna.load_study(study_name=STUDY, storage=tuning.open_storage(storage, heartbeat_interval=1))
    foreign = study.ask()
    foreign.set_user_attr(tuning.WORKER_ATTR, {"machine": "another-host/x/y", "pid": 1, "trial": foreign.number})
    study._storage.record_heartbeat(foreign._trial_id)
    wait_workers([start_worker(storage, tmp_path, "worker", seed=1)], tmp_path)

    trials = {trial.number: trial for trial in read_study(storage).get_trials()}
    assert trials[foreign.number].state == TrialState.FAIL
    assert any(trial.system_attrs.get("failed_trial") == foreign.number for trial in trials.values())
    assert sum(trial.state in tuning.FINISHED_STATES for trial in trials.values()) >= TOTAL


def test_workers_creating_a_fresh_sqlite_database_at_once(tmp_path):
    """Without the creation lock, CREATE TABLE races make 3 of these 4 processes fail ('table already exists')."""
    script = (
        "import os, sys, time, optuna\n"
        "from sb3_symmetric import tuning\n"
        "url, ready, n = sys.argv[1], sys.argv[2], int(sys.argv[3])\n"
        "open(os.path.join(ready, str(os.getpid())), 'w').close()\n"
        "while len(os.listdir(ready)) < n: time.sleep(0.001)\n"
        "optuna.create_study(storage=tuning.open_storage(url, 30), study_name='s', load_if_exists=True)\n"
    )
    n = 4
    url, ready = f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path / "ready"
    ready.mkdir()
    workers = [
        subprocess.Popen([sys.executable, "-c", script, url, str(ready), str(n)], env=worker_env(), stderr=subprocess.PIPE)
        for _ in range(n)
    ]
    errors = [worker.communicate(timeout=120)[1].decode() for worker in workers]
    assert [worker.returncode for worker in workers] == [0] * n, errors
    assert optuna.get_all_study_names(storage=url) == ["s"]


def test_trial_id_replays_a_stored_trial_including_trial_zero(tmp_path):
    storage = str(tmp_path / "study.log")
    study = optuna.create_study(storage=tuning.open_storage(storage), study_name=STUDY, direction="maximize")
    for value in (1.0, 2.0):
        trial = study.ask()
        tuning.sample_sppo_params(trial, 0, 1, {})
        study.tell(trial, value)
    alpha, beta, rce_z = (study.trials[0].params[name] for name in ("alpha", "beta", "rce_z"))
    conf = tmp_path / "conf.yml"
    conf.write_text(TINY_CONF)
    command = [
        sys.executable, "-m", "sb3_symmetric.zoo", "train", "--algo", "sppo", "--env", "CartPole-v1",
        "--storage", storage, "--study-name", STUDY, "--trial-id", "0", "-conf", str(conf), "-n", "64",
        "-params", "n_steps:64", "batch_size:64", "-f", str(tmp_path / "logs"), "--eval-freq", "-1",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=worker_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    config = yaml.unsafe_load(next((tmp_path / "logs" / "sppo").glob("CartPole-v1_*/CartPole-v1/config.yml")).read_text())
    assert (config["alpha"], config["beta"], config["rce_z"]) == (alpha, beta, rce_z)


def test_trial_id_that_does_not_exist_is_a_clear_error(tmp_path):
    storage = str(tmp_path / "study.log")
    optuna.create_study(storage=tuning.open_storage(storage), study_name=STUDY)
    command = [
        sys.executable, "-m", "sb3_symmetric.zoo", "train", "--algo", "sppo", "--env", "CartPole-v1",
        "--storage", storage, "--study-name", STUDY, "--trial-id", "5", "-n", "64",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, env=worker_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "has no trial number 5" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("algo", ["sppo", "sa2c"])
def test_samplers_add_the_symmetric_weights_and_convert_back(algo):
    sampler = tuning.sample_sppo_params if algo == "sppo" else tuning.sample_sa2c_params
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        sampled = sampler(trial, 0, 1, {})
        assert tuning.ALPHA_RANGE[0] <= sampled["alpha"] <= tuning.ALPHA_RANGE[1]
        assert tuning.BETA_RANGE[0] <= sampled["beta"] <= tuning.BETA_RANGE[1]
        assert sampled["rce_z"] in tuning.RCE_Z_CHOICES
        assert "learning_rate" in sampled and "policy_kwargs" in sampled
        study.tell(trial, 0.0)
        assert tuning.convert_symmetric_params(study.trials[-1].params) == sampled


def test_register_is_idempotent_and_fills_rl_zoo_tables():
    from rl_zoo3 import exp_manager, hyperparams_opt

    methods = {name: getattr(exp_manager.ExperimentManager, name) for name in ("load_trial", "hyperparameters_optimization")}
    tuning.register()
    zoo.register()
    assert methods == {name: getattr(exp_manager.ExperimentManager, name) for name in methods}
    assert exp_manager.HYPERPARAMS_SAMPLER["sppo"] is tuning.sample_sppo_params
    assert hyperparams_opt.HYPERPARAMS_CONVERTER["sa2c"] is tuning.convert_symmetric_params
    assert exp_manager.HYPERPARAMS_SAMPLER["ppo"] is hyperparams_opt.sample_ppo_params


@pytest.mark.parametrize(
    "storage, message",
    [
        ("redis://localhost:6379", "unsupported scheme"),
        ("study.db", "sqlite:///study.db"),
        ("results/study", "ending in '.log'"),
        ("postgresql://user@host:notaport/db", "not a valid database URL"),
        ("sqlite:///:memory:", "cannot be shared"),
        ("", "is empty"),
    ],
)
def test_bad_storage_urls_are_clear_errors(storage, message):
    with pytest.raises(tuning.StorageError, match=re.escape(message)):
        tuning.open_storage(storage)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://postgres@127.0.0.1:{free_port()}/optuna",  # nothing listens there
        "postgresql://postgres@10.255.255.1:5432/optuna?connect_timeout=3",  # unroutable: times out
    ],
    ids=["refused", "unreachable"],
)
def test_unreachable_database_fails_fast(url):
    start = time.monotonic()
    with pytest.raises(tuning.StorageError, match="cannot connect to the Optuna database"):
        tuning.open_storage(url)
    assert time.monotonic() - start < 15


def test_missing_database_on_a_live_server_is_a_clear_error(postgres_url):
    with pytest.raises(tuning.StorageError, match='database "nope" does not exist'):
        tuning.open_storage(postgres_url.rsplit("/", 1)[0] + "/nope")


def test_command_with_unreachable_storage_exits_with_a_message(tmp_path):
    conf = tmp_path / "conf.yml"
    conf.write_text(TINY_CONF)
    storage = f"postgresql://postgres@127.0.0.1:{free_port()}/optuna"
    command = worker_command(storage, tmp_path / "logs", conf, seed=0)
    start = time.monotonic()
    result = subprocess.run(command, cwd=tmp_path, env=worker_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "sb3_symmetric: cannot connect to the Optuna database" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("form", ["journal", "sqlite"])
def test_storage_in_a_missing_folder_is_an_error_and_creates_nothing(tmp_path, form):
    missing = tmp_path / "no" / "such"
    storage = str(missing / "study.log") if form == "journal" else f"sqlite:///{missing / 'study.db'}"
    with pytest.raises(tuning.StorageError, match=re.escape(f"the folder {str(missing)!r} does not exist")):
        tuning.open_storage(storage)
    assert not (tmp_path / "no").exists()
    conf = tmp_path / "conf.yml"
    conf.write_text(TINY_CONF)
    result = subprocess.run(
        worker_command(storage, tmp_path / "logs", conf, seed=0),
        cwd=tmp_path,
        env=worker_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("sb3_symmetric: --storage") and "Traceback" not in result.stderr
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize(
    "text, masked",
    [
        ("postgresql://optuna:secret@db:5432/optuna", "postgresql://optuna:***@db:5432/optuna"),
        ("postgresql+psycopg2://u:p%40ss@h/d?x=1", "postgresql+psycopg2://u:***@h/d?x=1"),
        ("Study 's' in mysql://root:pw@h:1/d: 3 finished", "Study 's' in mysql://root:***@h:1/d: 3 finished"),
        ("postgresql://optuna@db/optuna and logs/study.log", "postgresql://optuna@db/optuna and logs/study.log"),
    ],
)
def test_mask_password(text, masked):
    assert tuning.mask_password(text) == masked


def test_invalid_url_error_does_not_show_the_password():
    with pytest.raises(tuning.StorageError) as raised:
        tuning.open_storage("postgresql://user:hunter2@host:notaport/db")
    assert "hunter2" not in str(raised.value) and "user:***@host" in str(raised.value)


PASSWORD = "pw-must-not-leak"


def with_password(url: str) -> str:
    # The throwaway cluster trusts every local connection, so any password is accepted.
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")


def test_postgres_password_is_masked_everywhere(tmp_path):
    """Sweep, report, replay: the password is in no output, no stored attribute and no file written."""
    with postgres_server() as postgres_url:
        check_password_is_masked(tmp_path, postgres_url)


def check_password_is_masked(tmp_path: Path, postgres_url: str) -> None:
    storage = with_password(postgres_url)
    create_seeded_study(storage, 2)
    conf = tmp_path / "conf.yml"
    conf.write_text(TINY_CONF)
    sweep = worker_command(storage, tmp_path / "logs", conf, seed=0)
    sweep[sweep.index("--max-total-trials") : sweep.index("--max-total-trials") + 2] = ["--n-trials", "1"]
    outputs = []
    result = subprocess.run(sweep, cwd=tmp_path, env=worker_env(), capture_output=True, text=True, timeout=300)
    outputs.append(result.stdout + result.stderr)
    assert result.returncode == 0, outputs[-1][-3000:]
    assert f"--storage {postgres_url.replace('postgres@', 'postgres:***@')} " in result.stdout  # the "Replay it:" line
    replay = [
        *zoo_train(), "--algo", "sppo", "--env", "CartPole-v1", "--storage", storage, "--study-name", STUDY,
        "--trial-id", "0", "-conf", str(conf), "-n", "64", "-params", "n_steps:64", "batch_size:64",
        "-f", str(tmp_path / "logs"), "--eval-freq", "-1",
    ]  # fmt: skip
    result = subprocess.run(replay, cwd=tmp_path, env=worker_env(), capture_output=True, text=True, timeout=120)
    outputs.append(result.stdout + result.stderr)
    assert result.returncode == 0, outputs[-1][-3000:]
    for output in outputs:
        assert PASSWORD not in output
    assert PASSWORD not in read_study(storage).user_attrs["command"]
    written = [path for path in (tmp_path / "logs").rglob("*") if path.is_file()]
    assert any(path.name == "args.yml" for path in written) and any(path.suffix == ".pkl" for path in written)
    for path in written:
        assert PASSWORD.encode() not in path.read_bytes(), path


def stop_postgres(url: str) -> None:
    """Shut the server down the way a crash or an administrator would, from outside the test's own fixture."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(
        url.replace("postgresql://", "postgresql+psycopg2://"), poolclass=sqlalchemy.pool.NullPool
    )
    with engine.connect() as connection:
        data_directory = connection.execute(sqlalchemy.text("SHOW data_directory")).scalar_one()
    engine.dispose()
    postmaster_pid = int(Path(data_directory, "postmaster.pid").read_text().split()[0])
    os.kill(postmaster_pid, signal.SIGQUIT)  # immediate shutdown: every connection is cut


def test_postgres_stopped_mid_sweep_is_one_line_and_a_nonzero_exit(tmp_path):
    with postgres_server() as url:
        storage = with_password(url)
        create_seeded_study(storage, TOTAL + 2)
        worker = start_worker(storage, tmp_path, "worker", seed=1)
        try:
            study = read_study(storage)
            wait_for(lambda: owned_running_trial(study, worker.pid) is not None, 120, "a running trial")
            stop_postgres(url)
            worker.wait(timeout=120)
        finally:
            worker.kill()
    output = (tmp_path / "worker.log").read_text()
    last = output.strip().splitlines()[-1]
    assert worker.returncode == 1, output[-3000:]
    masked = url.replace("postgres@", "postgres:***@")
    assert last.startswith(f"sb3_symmetric: lost the Optuna database '{masked}' ("), output[-3000:]
    assert "rerun the same command" in last
    assert "An exception is raised during the commit" not in last  # the driver's reason, not Optuna's wrapper
    assert "Traceback" not in output and "Exception in thread" not in output, output[-3000:]
    assert PASSWORD not in output


def test_interrupted_worker_puts_its_trial_back(tmp_path):
    storage = str(tmp_path / "study.log")
    create_seeded_study(storage, TOTAL)
    # trials of a minute: Ctrl-C lands inside one (with 2-second trials it could land after one had finished)
    worker = start_worker(storage, tmp_path, "worker", seed=1, steps=100 * TRIAL_STEPS)
    study = read_study(storage)
    wait_for(lambda: owned_running_trial(study, worker.pid) is not None, 120, "a running trial")
    running = owned_running_trial(study, worker.pid)
    worker.send_signal(signal.SIGINT)
    worker.wait(timeout=120)
    output = (tmp_path / "worker.log").read_text()
    assert worker.returncode == 0, output[-3000:]  # RL-Zoo's Ctrl-C: stop, then report
    assert f"Interrupted: trials [{running}] are queued again" in output
    trials = {trial.number: trial for trial in read_study(storage).get_trials()}
    assert trials[running].state == TrialState.FAIL
    requeued = [trial for trial in trials.values() if running in trial.system_attrs.get("retry_history", ())]
    assert len(requeued) == 1 and requeued[0].state == TrialState.WAITING
    assert requeued[0].params == trials[running].params
