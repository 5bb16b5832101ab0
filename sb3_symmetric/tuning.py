"""Optuna sweeps for SymPPO ("sppo") and SymA2C ("sa2c") through RL-Zoo.

:func:`register` (called at the end of :func:`sb3_symmetric.zoo.register`) does two things:

- adds samplers and converters for "sppo" and "sa2c" to RL-Zoo: RL-Zoo's PPO / A2C search spaces plus the
  symmetric loss weights ``alpha``, ``beta`` and ``rce_z``, so ``-optimize`` and ``--trial-id`` work;
- replaces four ``ExperimentManager`` methods, for these two algorithms only, so that a sweep loses nothing:

  - ``hyperparameters_optimization``: the study lives in a persistent storage (a journal file by default);
    ``--n-trials`` counts this worker's trials and ``--max-total-trials`` the study's finished ones, as in RL-Zoo;
    trials of killed or interrupted workers are failed and re-queued instead of counting as running forever;
    the report is RL-Zoo's (``report_*.csv`` and ``report_*.pkl``); a lost database ends the worker with one line;
  - ``load_trial``: opens the storage the same way and looks the trial up by its number;
  - ``read_hyperparameters``: ``--trial-id 0`` replays trial 0 (RL-Zoo tests the id for truth and skips it);
  - ``_save_config``: masks the database password in the ``args.yml`` and ``command.txt`` saved with a model.

Storages (``--storage``): a path ending in ``.log`` (Optuna journal file, one machine), ``sqlite:///file.db``
(one machine) or ``postgresql://user@host:port/db`` (many machines). Every message shows a database URL with its
password masked. docs/sweeps.rst is the user's guide.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import pickle
import re
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

# rl_zoo3 is imported inside the functions: importing it here would run the start-up hook's register(), which
# imports this module, while this module is still half-initialized.

SYMMETRIC_ALGOS = ("sppo", "sa2c", "sppo_lstm")

# Search space of the symmetric loss weights (docs/paper.rst, "Formulas" and "Hyperparameters"):
# alpha: the scripts use 0.5 (Atari, MuJoCo, RLHF); the floor keeps the forward (PPO / A2C) term in play.
ALPHA_RANGE = (0.1, 1.0)
# beta: log-uniform so that both the Atari value (1) and the MuJoCo value (20) are well covered.
BETA_RANGE = (0.1, 30.0)
# rce_z: -1 is what every released script uses, -6 is the class default of the official code.
RCE_Z_CHOICES = (-1.0, -2.0, -4.0, -6.0)

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
# User attribute naming the process that runs a trial; lets any worker on the same machine fail a dead one's trial.
WORKER_ATTR = "worker"
# A trial re-queued after its worker died is run at most this many more times (a config that kills workers stops).
MAX_RETRY = 3
HEARTBEAT_ENV = "SB3_SYMMETRIC_HEARTBEAT_INTERVAL"
DEFAULT_HEARTBEAT_INTERVAL = 30
CONNECT_TIMEOUT_S = 10
POLL_INTERVAL_S = 2.0

STORAGE_FORMS = (
    "a journal file path ending in '.log' (one machine), "
    "'sqlite:///path/to/study.db' (one machine) or "
    "'postgresql://user:password@host:port/database' (many machines)"
)


class StorageError(ValueError):
    """The ``--storage`` value is malformed, or the database it names cannot be reached."""


class StorageLost(BaseException):
    """The database went away during a sweep; a BaseException so that Optuna does not try to record the trial in it."""


# "scheme://user:password@" in a URL or in any text holding one
_PASSWORD_IN_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@")


def mask_password(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@host`` URL in it replaced by ``***``."""
    return _PASSWORD_IN_URL.sub(r"\1***@", text)


def is_connection_lost(error: BaseException) -> bool:
    """Whether ``error``, or an exception it was raised from or during, says the database cannot be reached."""
    import sqlalchemy

    lost = (StorageLost, sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)
    return any(
        isinstance(link, lost) or (isinstance(link, sqlalchemy.exc.DBAPIError) and link.connection_invalidated)
        for link in _chain(error)
    )


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and the exceptions it was raised from or during, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def storage_lost_message(storage: str, error: BaseException) -> str:
    """One line naming the storage (password masked), the database driver's own reason, and what to do."""
    chain = _chain(error)
    # SQLAlchemy keeps the driver's exception as .orig; its first line is the server's or the socket's reason.
    sources = [orig for link in chain if (orig := getattr(link, "orig", None)) is not None] or chain[-1:]
    lines = str(sources[0]).strip().splitlines()
    reason = f" ({mask_password(lines[0])})" if lines and not isinstance(sources[0], StorageLost) else ""
    return (
        f"lost the Optuna database {mask_password(storage)!r}{reason}. Start the database again and rerun the same "
        "command: the study resumes, and trials left RUNNING are failed and re-queued "
        "(docs/sweeps.rst, 'Failures and resuming')."
    )


def sample_symmetric_params(trial: optuna.Trial) -> dict[str, float]:
    """Sample the symmetric loss weights ``alpha``, ``beta`` and ``rce_z`` (ranges: module constants)."""
    return {
        "alpha": trial.suggest_float("alpha", *ALPHA_RANGE),
        "beta": trial.suggest_float("beta", *BETA_RANGE, log=True),
        "rce_z": trial.suggest_categorical("rce_z", RCE_Z_CHOICES),
    }


def sample_sppo_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """RL-Zoo's PPO search space plus the symmetric loss weights."""
    from rl_zoo3.hyperparams_opt import sample_ppo_params

    hyperparams = sample_ppo_params(trial, n_actions, n_envs, additional_args)
    return {**hyperparams, **sample_symmetric_params(trial)}


def sample_sa2c_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """RL-Zoo's A2C search space plus the symmetric loss weights."""
    from rl_zoo3.hyperparams_opt import sample_a2c_params

    hyperparams = sample_a2c_params(trial, n_actions, n_envs, additional_args)
    return {**hyperparams, **sample_symmetric_params(trial)}


def convert_symmetric_params(sampled_params: dict[str, Any]) -> dict[str, Any]:
    """Turn the raw parameters stored in a trial into SymPPO / SymA2C keyword arguments (used by ``--trial-id``)."""
    from rl_zoo3.hyperparams_opt import convert_onpolicy_params

    hyperparams = convert_onpolicy_params(sampled_params)
    for name in ("alpha", "beta", "rce_z"):
        if name in hyperparams:
            hyperparams[name] = float(hyperparams[name])
    return hyperparams


def default_storage(log_folder: str, algo: str, env_id: str) -> str:
    """Journal file used when ``--storage`` is not given, so that a restarted command resumes its study."""
    return str(Path(log_folder) / algo / "optuna" / f"{env_id}.log")


def default_study_name(algo: str, env_id: str) -> str:
    return f"{algo}-{env_id}"


def heartbeat_interval_from_env() -> int:
    """Seconds between heartbeats of a running trial in a database storage (a trial is stale after two)."""
    value = os.environ.get(HEARTBEAT_ENV, str(DEFAULT_HEARTBEAT_INTERVAL))
    try:
        interval = int(value)
    except ValueError:
        interval = 0
    if interval <= 0:
        raise StorageError(f"{HEARTBEAT_ENV} must be a positive number of seconds; got {value!r}")
    return interval


def open_storage(storage: str, heartbeat_interval: int | None = None, create_folder: bool = False) -> BaseStorage:
    """Open the Optuna storage named by a ``--storage`` value, or raise :class:`StorageError` saying what to fix.

    :param storage: a ``.log`` journal path, a ``sqlite:///`` URL or a PostgreSQL / MySQL URL
    :param heartbeat_interval: database storages only: seconds between heartbeats of running trials; a trial
        without a heartbeat for twice as long is failed and re-queued by the next worker that starts a trial.
        ``None`` turns heartbeats off (enough for reading a study).
    :param create_folder: create the folder of a journal or SQLite file if it is missing; by default a missing
        folder is an error, since it usually means a typo in the path
    """
    storage = storage.strip()
    if not storage:
        raise StorageError(f"--storage is empty; pass {STORAGE_FORMS}")
    if "://" not in storage:
        if storage.endswith(".log"):
            _check_folder(storage, storage, create_folder)
            # The default symlink lock is broken after 30 s if a worker died holding it, so a kill cannot block the others.
            return JournalStorage(JournalFileBackend(storage))
        if storage.endswith((".db", ".sqlite", ".sqlite3")):
            raise StorageError(f"--storage {storage!r} looks like an SQLite file; write it as 'sqlite:///{storage}'")
        raise StorageError(f"--storage {storage!r} is not a storage Optuna can share between workers; pass {STORAGE_FORMS}")
    import sqlalchemy

    try:
        url = sqlalchemy.engine.make_url(storage)
    except (sqlalchemy.exc.ArgumentError, ValueError) as error:
        raise StorageError(
            f"--storage {mask_password(storage)!r} is not a valid database URL ({mask_password(str(error))}); "
            f"pass {STORAGE_FORMS}"
        ) from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_storage(url, heartbeat_interval, create_folder)
    if backend in ("postgresql", "mysql"):
        return _server_storage(url, heartbeat_interval)
    raise StorageError(f"--storage {_safe(url)!r}: unsupported scheme {url.drivername!r}; pass {STORAGE_FORMS}")


def _safe(url: Any) -> str:
    return str(url.render_as_string(hide_password=True))


def _check_folder(storage: str, path: str, create_folder: bool) -> None:
    folder = Path(path).parent
    if create_folder:
        folder.mkdir(parents=True, exist_ok=True)
    elif not folder.is_dir():
        raise StorageError(
            f"--storage {storage!r}: the folder {str(folder)!r} does not exist. Create it first "
            f"(mkdir -p {folder}) or correct the path; sb3_symmetric does not create folders for a --storage."
        )


def _retry_callback() -> Callable[[optuna.Study, FrozenTrial], None]:
    """Queues a failed trial's configuration again, up to MAX_RETRY times (the class was renamed in Optuna 4.9)."""
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return retry(max_retry=MAX_RETRY)


class _SweepRDBStorage(RDBStorage):
    """RDBStorage whose heartbeat thread stays quiet when the database is gone (the main thread reports it once)."""

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as error:
            if not is_connection_lost(error):
                raise


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], heartbeat_interval: int | None) -> RDBStorage:
    kwargs: dict[str, Any] = {"engine_kwargs": engine_kwargs}
    if heartbeat_interval is not None:
        # Optuna 4.9 renamed failed_trial_callback.
        callback_arg = (
            "heartbeat_stale_trial_callback"
            if "heartbeat_stale_trial_callback" in inspect.signature(RDBStorage).parameters
            else "failed_trial_callback"
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            kwargs.update(heartbeat_interval=heartbeat_interval, grace_period=2 * heartbeat_interval)
            kwargs[callback_arg] = _retry_callback()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return _SweepRDBStorage(url, **kwargs)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # Windows: no lock; start the first worker alone there
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sqlite_storage(url: Any, heartbeat_interval: int | None, create_folder: bool) -> RDBStorage:
    database = url.database
    if not database or database == ":memory:":
        raise StorageError(f"--storage {_safe(url)!r}: an in-memory SQLite database cannot be shared; name a file")
    path = Path(database)
    _check_folder(_safe(url), database, create_folder)
    # Workers wait up to a minute for SQLite's write lock instead of failing with "database is locked".
    engine_kwargs = {"connect_args": {"timeout": 60}}
    # Two workers creating a fresh database at once race on CREATE TABLE; a file lock makes the creation one at a time.
    with _file_lock(path.with_name(path.name + ".init-lock")):
        return _rdb_storage(url.render_as_string(hide_password=False), engine_kwargs, heartbeat_interval)


def _server_storage(url: Any, heartbeat_interval: int | None) -> RDBStorage:
    import sqlalchemy

    if url.drivername == "postgresql":
        # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3; the [postgres] extra installs psycopg2.
        if importlib.util.find_spec("psycopg2") is not None:
            url = url.set(drivername="postgresql+psycopg2")
        elif importlib.util.find_spec("psycopg") is None:
            raise StorageError("a PostgreSQL storage needs a driver: pip install 'sb3-symmetric[postgres]'")
    connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        probe = sqlalchemy.create_engine(url, connect_args=connect_args, poolclass=sqlalchemy.pool.NullPool)
    except ImportError as error:
        raise StorageError(f"--storage {_safe(url)!r}: the database driver is not installed ({error})") from None
    try:
        # Fail fast with the server's own words (wrong host/port, auth, missing database) instead of hanging.
        with probe.connect():
            pass
    except sqlalchemy.exc.DBAPIError as error:
        reason = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
        raise StorageError(
            f"cannot connect to the Optuna database {_safe(url)!r}: {mask_password(reason)}. "
            "Check that the server is running and reachable, and that the user and database exist "
            "(docs/sweeps.rst, 'Many machines')."
        ) from None
    finally:
        probe.dispose()
    engine_kwargs = {"connect_args": connect_args, "pool_pre_ping": True}
    # Workers on several machines may create the tables at the same moment; the loser just opens them again.
    for attempt in range(5):
        try:
            return _rdb_storage(url.render_as_string(hide_password=False), engine_kwargs, heartbeat_interval)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError, sqlalchemy.exc.OperationalError):
            if attempt == 4:
                raise
            time.sleep(0.5 + attempt)
    raise AssertionError("unreachable")


def load_study(storage: str, study_name: str) -> optuna.Study:
    """Open an existing study for reading, with a clear error if it is not there."""
    path = storage.strip().removeprefix("sqlite:///")
    # Opening a missing journal or SQLite file would create an empty one.
    if "://" not in path and not Path(path).exists():
        raise StorageError(f"no study storage at {path!r}; pass the --storage and --study-name of the sweep")
    opened = open_storage(storage)
    try:
        return optuna.load_study(study_name=study_name, storage=opened)
    except KeyError:
        names = optuna.get_all_study_names(storage=opened)
        raise StorageError(f"no study named {study_name!r} in {mask_password(storage)!r}; it holds {names}") from None


def _read_first_line(path: str) -> str:
    try:
        with open(path) as handle:
            return handle.readline().strip()
    except OSError:
        return ""


def _machine_id() -> str:
    """Identifies the PID namespace of this process: two processes with equal ids can see each other's PIDs."""
    boot_id = _read_first_line("/proc/sys/kernel/random/boot_id")
    try:
        pid_namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        pid_namespace = ""
    return f"{socket.gethostname()}/{boot_id}/{pid_namespace}"


def _process_stat(pid: int) -> list[str]:
    """Fields 3.. of /proc/<pid>/stat (Linux; empty elsewhere or when the process is gone)."""
    # The command name (field 2) may contain spaces; the fields after its closing parenthesis are plain.
    return _read_first_line(f"/proc/{pid}/stat").rpartition(")")[2].split()


def _process_start_time(pid: int) -> str:
    """Start time of a process in clock ticks since boot, so a reused PID is not taken for the old process."""
    fields = _process_stat(pid)
    return fields[19] if len(fields) > 19 else ""


def worker_record(trial_number: int) -> dict[str, Any]:
    """What a worker stores in the ``worker`` user attribute of the trial it runs."""
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "machine": _machine_id(),
        "started": _process_start_time(pid),
        "trial": trial_number,
    }


def _is_dead_local_worker(record: Any, trial_number: int) -> bool:
    if not isinstance(record, dict) or record.get("trial") != trial_number or record.get("machine") != _machine_id():
        # Another machine's worker (the database heartbeat covers it), or a record copied into a re-queued trial.
        return False
    pid = int(record["pid"])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    fields = _process_stat(pid)
    if fields[:1] == ["Z"]:
        return True  # killed, not yet reaped by its parent
    started = record.get("started", "")
    return bool(started) and len(fields) > 19 and fields[19] != started


def fail_dead_local_trials(study: optuna.Study) -> list[int]:
    """Fail, and re-queue, the RUNNING trials whose worker process on this machine no longer exists.

    :return: the numbers of the trials this call failed
    """
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not _is_dead_local_worker(trial.user_attrs.get(WORKER_ATTR), trial.number):
            continue
        try:
            changed = study._storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL)
        except UpdateFinishedTrialError:
            changed = False  # another worker got there first
        if changed:
            failed.append(trial.number)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                _retry_callback()(study, study._storage.get_trial(trial._trial_id))
    return failed


def count_trials(study: optuna.Study) -> tuple[int, int]:
    """Number of finished (COMPLETE or PRUNED) and of RUNNING trials in the study."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED_STATES, TrialState.RUNNING))
    running = sum(trial.state == TrialState.RUNNING for trial in trials)
    return len(trials) - running, running


def _owned(objective: Callable[[optuna.Trial], float]) -> Callable[[optuna.Trial], float]:
    """The objective, marking its trial with this worker and turning a lost database into :class:`StorageLost`."""

    def owned_objective(trial: optuna.Trial) -> float:
        try:
            trial.set_user_attr(WORKER_ATTR, worker_record(trial.number))
            return objective(trial)
        except Exception as error:
            if is_connection_lost(error):
                # Optuna would try to record the failure in the lost database and bury the reason in a long traceback.
                raise StorageLost() from error
            raise

    return owned_objective


def _fail_abandoned_trials(study: optuna.Study) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        # Optuna only does this when a trial starts; a worker waiting for the last trials must do it too.
        optuna.storages.fail_stale_trials(study)
    failed = fail_dead_local_trials(study)
    if failed:
        print(f"Failed and re-queued trials {failed}: their worker process is gone")


def requeue_interrupted_trials(study: optuna.Study) -> list[int]:
    """Queue again the failed trials this process was running (Ctrl-C), unless already queued or out of retries.

    :return: the numbers of the trials queued again
    """
    me, machine = os.getpid(), _machine_id()
    trials = study.get_trials(deepcopy=False)
    retried = {number for trial in trials for number in trial.system_attrs.get("retry_history", ())}
    queued = []
    for trial in trials:
        record = trial.user_attrs.get(WORKER_ATTR)
        if (
            trial.state == TrialState.FAIL
            and trial.number not in retried
            and isinstance(record, dict)
            and (record.get("pid"), record.get("machine"), record.get("trial")) == (me, machine, trial.number)
        ):
            before = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
            _retry_callback()(study, trial)
            if len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,))) > before:
                queued.append(trial.number)
    return queued


def optimize_trials(study: optuna.Study, objective: Callable[[optuna.Trial], float], n_trials: int, n_jobs: int = 1) -> None:
    """Run ``n_trials`` trials in this worker (RL-Zoo's ``--n-trials``), re-queued trials of dead workers first."""
    _fail_abandoned_trials(study)
    study.optimize(_owned(objective), n_trials=n_trials, n_jobs=n_jobs, gc_after_trial=True)


def optimize_to_total(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    total: int,
    n_jobs: int = 1,
    poll_interval: float = POLL_INTERVAL_S,
) -> None:
    """Run trials until the study holds ``total`` finished trials, counting those of every worker and earlier run.

    A worker starts a trial only while finished + running trials stay below ``total``; when the remaining trials
    are running elsewhere it waits for them, so a worker that dies leaves its trial to be failed (same machine:
    at once; other machines: by the database heartbeat), re-queued and run by whoever is still there.
    With several workers the study may end up to ``workers - 1`` trials above ``total``.
    """

    def stop_at_total(study: optuna.Study, _trial: FrozenTrial) -> None:
        finished, running = count_trials(study)
        if finished + running >= total:
            study.stop()

    told_waiting = False
    while True:
        _fail_abandoned_trials(study)
        finished, running = count_trials(study)
        if finished >= total:
            return
        if finished + running >= total:
            if not told_waiting:
                print(f"{finished}/{total} trials finished; waiting for the {running} running in other workers")
                told_waiting = True
            time.sleep(poll_interval)
            continue
        told_waiting = False
        study.optimize(_owned(objective), n_jobs=n_jobs, callbacks=[stop_at_total], gc_after_trial=True)


# RL-Zoo's methods that the replacements below fall back to for every other algorithm.
_ORIGINALS: dict[str, Callable[..., Any]] = {}


def _apply_study_defaults(manager: Any) -> None:
    if manager.storage is None:
        manager.storage = default_storage(manager.log_folder, manager.algo, manager.env_name.gym_id)
    if manager.study_name is None:
        manager.study_name = default_study_name(manager.algo, manager.env_name.gym_id)


def _count_existing_trials(storage: BaseStorage, study_name: str) -> int:
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return 0
    return len(storage.get_all_trials(study_id, deepcopy=False))


@contextlib.contextmanager
def _one_line_errors(storage: str | None) -> Iterator[None]:
    """Turn a bad ``--storage`` or a database lost on the way into one line on stderr and exit status 1."""
    try:
        yield
    except StorageError as error:
        raise SystemExit(f"sb3_symmetric: {error}") from None
    except (Exception, StorageLost) as error:
        if storage is None or not is_connection_lost(error):
            raise
        raise SystemExit(f"sb3_symmetric: {storage_lost_message(storage, error)}") from None


def _hyperparameters_optimization(self: Any) -> None:
    """RL-Zoo's sweep, into a persistent study whose trials survive dead workers and restarts."""
    if self.algo not in SYMMETRIC_ALGOS:
        return _ORIGINALS["hyperparameters_optimization"](self)
    if self.storage is None:
        # The default journal's folder is ours to create; a --storage folder the user names must exist.
        Path(default_storage(self.log_folder, self.algo, self.env_name.gym_id)).parent.mkdir(parents=True, exist_ok=True)
    _apply_study_defaults(self)
    with _one_line_errors(self.storage):
        _optimize(self)


def _optimize(manager: Any) -> None:
    if manager.verbose > 0:
        print("Optimizing hyperparameters")
    storage = open_storage(manager.storage, heartbeat_interval_from_env())
    if manager.tensorboard_log is not None:
        warnings.warn("Tensorboard log is deactivated when running hyperparameter optimization", stacklevel=2)
        manager.tensorboard_log = None

    # Offset the sampler seed by the trials already stored, so a restarted worker does not redraw the same configs.
    seed = manager.seed
    manager.seed = (seed + _count_existing_trials(storage, manager.study_name)) % 2**32
    try:
        sampler = manager._create_sampler(manager.sampler)
    finally:
        manager.seed = seed
    if manager.verbose > 0:
        print(f"Sampler: {manager.sampler} - Pruner: {manager.pruner}")
    study = optuna.create_study(
        sampler=sampler,
        pruner=manager._create_pruner(manager.pruner),
        storage=storage,
        study_name=manager.study_name,
        load_if_exists=True,
        direction="maximize",
    )
    if "command" not in study.user_attrs:
        study.set_user_attr("command", mask_password(" ".join(sys.orig_argv)))
        for key in sorted(manager._hyperparams):
            study.set_user_attr(key, str(manager._hyperparams[key]))
    finished, _ = count_trials(study)
    where = f"Study {manager.study_name!r} in {mask_password(manager.storage)}: {finished} finished trials"
    try:
        if manager.max_total_trials is not None:
            print(f"{where}, target {manager.max_total_trials} for the study (--max-total-trials)")
            optimize_to_total(study, manager.objective, manager.max_total_trials, n_jobs=manager.n_jobs)
        else:
            print(f"{where}; this worker runs {manager.n_trials} more (--n-trials)")
            optimize_trials(study, manager.objective, manager.n_trials, n_jobs=manager.n_jobs)
    except KeyboardInterrupt:
        # Ctrl-C ends this worker's sweep (Optuna marks its running trial FAIL); the trial goes back in the queue.
        queued = requeue_interrupted_trials(study)
        if queued:
            print(f"Interrupted: trials {queued} are queued again for the next worker")
    _report(manager, study)


def offline_copy(study: optuna.Study) -> optuna.Study:
    """An in-memory copy of a study, for the pickled report: it opens without the database and holds no password."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory"
    try:
        copy = optuna.create_study(study_name=study.study_name, directions=study.directions)
    finally:
        optuna.logging.set_verbosity(verbosity)
    for key, value in study.user_attrs.items():
        copy.set_user_attr(key, value)
    copy.add_trials(study.get_trials(deepcopy=True))
    return copy


def report_path(manager: Any) -> Path:
    """RL-Zoo's report name, no suffix: ``<log folder>/<algo>/report_<env>_<n>-trials-<steps>-<sampler>-<pruner>_<time>``."""
    name = (
        f"report_{manager.env_name}_{manager.n_trials}-trials-{manager.n_timesteps}"
        f"-{manager.sampler}-{manager.pruner}_{int(time.time())}"
    )
    return Path(manager.log_folder) / manager.algo / name


def _report(manager: Any, study: optuna.Study) -> None:
    trials = study.get_trials(deepcopy=False)
    states = {state.name: sum(trial.state == state for trial in trials) for state in TrialState}
    print("Number of finished trials: ", sum(trial.state in FINISHED_STATES for trial in trials))
    print("Trials by state:", {name: count for name, count in states.items() if count})
    completed = [trial for trial in trials if trial.state == TrialState.COMPLETE]
    if completed:
        best = study.best_trial
        print(f"Best trial: number {best.number}, value {best.value}")
        for key, value in best.params.items():
            print(f"    {key}: {value}")
        print(
            "Replay it: rl_zoo3 train "
            f"--algo {manager.algo} --env {manager.env_name.gym_id} "
            f"--storage {mask_password(manager.storage)} --study-name {manager.study_name} --trial-id {best.number}"
        )
    path = report_path(manager)
    if manager.verbose:
        print(f"Writing report to {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    study.trials_dataframe().to_csv(f"{path}.csv")
    copy = offline_copy(study)
    with open(f"{path}.pkl", "wb") as file:
        pickle.dump(copy, file)
    if not manager.no_optim_plots:
        _show_plots(copy)


def _show_plots(study: optuna.Study) -> None:
    """RL-Zoo's two plots (optimization history, parameter importances), skipped when they cannot be drawn."""
    from optuna.visualization import plot_optimization_history, plot_param_importances

    try:
        figures = (plot_optimization_history(study), plot_param_importances(study))
    except (ValueError, ImportError, RuntimeError):
        return
    for figure in figures:
        figure.show()


def _load_trial(self: Any, storage: str, study_name: str, trial_id: int | None = None, convert: bool = True) -> dict[str, Any]:
    """Read a stored trial's parameters by trial number (the best trial when ``trial_id`` is None)."""
    if self.algo not in SYMMETRIC_ALGOS:
        return _ORIGINALS["load_trial"](self, storage, study_name, trial_id, convert)
    with _one_line_errors(storage):
        study = load_study(storage, study_name)
        if trial_id is None:
            trial = study.best_trial
        else:
            matches = [trial for trial in study.get_trials(deepcopy=False) if trial.number == trial_id]
            if not matches:
                raise SystemExit(f"sb3_symmetric: study {study_name!r} has no trial number {trial_id}")
            trial = matches[0]
    if trial.state != TrialState.COMPLETE:
        print(f"Warning: trial {trial.number} is {trial.state.name}, replaying its parameters anyway")
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER

    converter = HYPERPARAMS_CONVERTER[self.algo]
    return converter(trial.params) if convert else dict(trial.params)


class _TrialNumber(int):
    """A trial number that is true even when it is 0 (RL-Zoo checks ``if ... and self.trial_id``)."""

    def __bool__(self) -> bool:
        return True


def _read_hyperparameters(self: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    if self.algo not in SYMMETRIC_ALGOS:
        return _ORIGINALS["read_hyperparameters"](self)
    if self.trial_id is not None:
        _apply_study_defaults(self)
        self.trial_id = _TrialNumber(self.trial_id)
    return _ORIGINALS["read_hyperparameters"](self)


def _save_config(self: Any, saved_hyperparams: dict[str, Any]) -> None:
    """RL-Zoo's, then the database password masked in the saved arguments and command (push_to_hub uploads them)."""
    _ORIGINALS["_save_config"](self, saved_hyperparams)
    if self.algo in SYMMETRIC_ALGOS:
        for name in ("args.yml", "command.txt"):
            path = Path(self.params_path) / name
            if path.is_file():
                path.write_text(mask_password(path.read_text()))


def register() -> None:
    """Add the "sppo"/"sa2c" samplers and converters to RL-Zoo and patch its ExperimentManager (idempotent)."""
    from rl_zoo3 import exp_manager as zoo_exp_manager
    from rl_zoo3 import hyperparams_opt as zoo_hyperparams_opt

    # exp_manager imported these dicts by name: they must be the very objects we fill in.
    if (
        zoo_exp_manager.HYPERPARAMS_SAMPLER is not zoo_hyperparams_opt.HYPERPARAMS_SAMPLER
        or zoo_exp_manager.HYPERPARAMS_CONVERTER is not zoo_hyperparams_opt.HYPERPARAMS_CONVERTER
    ):
        raise RuntimeError("this rl_zoo3 version copies its sampler tables; sb3_symmetric.tuning cannot register")
    zoo_hyperparams_opt.HYPERPARAMS_SAMPLER.update(sppo=sample_sppo_params, sa2c=sample_sa2c_params)
    zoo_hyperparams_opt.HYPERPARAMS_CONVERTER.update(sppo=convert_symmetric_params, sa2c=convert_symmetric_params)
    zoo_hyperparams_opt.HYPERPARAMS_SAMPLER.update(sppo_lstm=sample_sppo_lstm_params)
    zoo_hyperparams_opt.HYPERPARAMS_CONVERTER.update(sppo_lstm=convert_symmetric_params)
    manager_class = zoo_exp_manager.ExperimentManager
    for name, replacement in (
        ("hyperparameters_optimization", _hyperparameters_optimization),
        ("load_trial", _load_trial),
        ("read_hyperparameters", _read_hyperparameters),
        ("_save_config", _save_config),
    ):
        if getattr(manager_class, name) is not replacement:
            _ORIGINALS.setdefault(name, getattr(manager_class, name))
            setattr(manager_class, name, replacement)


def sample_sppo_lstm_params(trial: optuna.Trial, n_actions: int, n_envs: int, additional_args: dict) -> dict[str, Any]:
    """RL-Zoo's RecurrentPPO (``ppo_lstm``) search space plus the symmetric loss weights."""
    from rl_zoo3.hyperparams_opt import sample_ppo_lstm_params

    hyperparams = sample_ppo_lstm_params(trial, n_actions, n_envs, additional_args)
    return {**hyperparams, **sample_symmetric_params(trial)}
