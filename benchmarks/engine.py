"""The benchmarks' one runner: runs are trials of an Optuna study, taken by any number of workers on any machines.

A :class:`Run` is one RL-Zoo training (algorithm, env, reward noise, seed, budget, evaluation schedule, device).
Its identity (:func:`run_key`) is everything that changes its result, code version included (:func:`code_version`),
so a changed budget, override or code makes a new run and a finished run is never redone.

- :func:`enqueue` adds each run once to a study (WAITING trials carrying the run in their user attributes);
- :func:`work` is a worker: it takes a waiting trial, trains the run in a child process, and marks the trial
  COMPLETE only if the child trained the whole budget (results stored in the trial); an interrupted or killed
  run goes back to the queue (dead workers and stale heartbeats: :mod:`sb3_symmetric.tuning`, as the sweeps);
- :func:`run_workers` starts and watches worker processes with a progress bar; no process outlives its parent.

Storages are those of the sweeps (:func:`sb3_symmetric.tuning.open_storage`): a journal file (one machine),
SQLite (one machine) or PostgreSQL (many machines). docs/grid.rst is the manual.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib.metadata
import json
import math
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "benchmarks" / "runs"
CATALOG = Path(__file__).resolve().parent / "presets.yml"

# paper's noise settings (docs/paper.rst, "Noise settings"): flip p, gaussian sigma, uniform v; "clean" is none
NOISE_PARAMETER = {"flip": "p", "gaussian": "sigma", "uniform": "v"}
# RL-Zoo keys of a YAML entry that are not keyword arguments of the algorithm
ZOO_KEYS = frozenset(
    {"n_timesteps", "policy", "n_envs", "normalize", "env_wrapper", "frame_stack", "callback", "vec_env_wrapper"}
)
# What a result depends on besides the files hashed by code_version
LIBRARIES = ("stable-baselines3", "sb3-contrib", "rl_zoo3", "gymnasium", "torch", "numpy")

RUN_ATTR = "run"
KEY_ATTR = "key"
CODE_ATTR = "code"
RESULT_ATTR = "result"
ERROR_ATTR = "error"
DUPLICATE_ATTR = "duplicate_of"
EXIT_INTERRUPTED = 130
POLL_S = 2.0
# a RUNNING trial still without its worker's name after this long was taken by a worker that died at once
ORPHAN_S = 120.0


class ConfigError(ValueError):
    """A preset, algorithm, env, seed count or storage given on the command line or in presets.yml is not valid."""


# ---------------------------------------------------------------- presets and algorithms (data: presets.yml)


@dataclass(frozen=True)
class Algorithm:
    """How the grid trains an algorithm name (``algorithms:`` in presets.yml)."""

    name: str
    zoo_algo: str
    label: str
    conf: str | None = None
    discretized_as: str | None = None
    twin: bool = False
    equivalent: tuple[str, ...] | None = None


@dataclass(frozen=True)
class EnvSpec:
    env: str
    budget: int
    noises: tuple[str, ...]
    discretized: bool = False


@dataclass(frozen=True)
class Preset:
    name: str
    envs: tuple[EnvSpec, ...]
    seeds: int
    algos: tuple[str, ...]
    n_evals: int = 10
    eval_episodes: int = 5
    note: str = ""


ALGORITHM_FIELDS = {"zoo_algo", "label", "conf", "discretized_as", "twin", "equivalent"}
PRESET_FIELDS = {"envs", "seeds", "algos", "n_evals", "eval_episodes", "note"}
ENV_FIELDS = {"env", "budget", "noises", "discretized"}
KNOBS = ("vf_coef", "ent_coef", "max_grad_norm", "optimizer")


def _positive_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where} must be a positive whole number; got {value!r}")
    return value


def _unknown(given: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(given) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown field(s) {extra}; allowed: {sorted(allowed)}")


def noise_callback(noise: str) -> list | None:
    """The RL-Zoo ``callback`` hyperparameter for a noise setting like ``"flip:0.1"``, or None when clean."""
    if noise == "clean":
        return None
    kind, _, value = noise.partition(":")
    try:
        amount = float(value)
    except ValueError:
        amount = math.nan
    if kind not in NOISE_PARAMETER or not math.isfinite(amount) or amount < 0:
        raise ConfigError(f"Unknown noise setting {noise!r}; use 'clean', 'flip:P', 'gaussian:SIGMA' or 'uniform:V'.")
    return [{"sb3_symmetric.noise.RewardNoiseCallback": {"kind": kind, NOISE_PARAMETER[kind]: amount}}]


def load_catalog(path: Path = CATALOG) -> tuple[dict[str, Algorithm], dict[str, Preset]]:
    """Algorithms and presets of ``presets.yml``, checked; :class:`ConfigError` names the faulty entry."""
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or set(data) != {"algorithms", "presets"}:
        raise ConfigError(f"{path}: needs exactly the sections 'algorithms' and 'presets'")
    algorithms: dict[str, Algorithm] = {}
    for name, entry in data["algorithms"].items():
        where = f"{path.name}, algorithm {name!r}"
        if not isinstance(entry, dict) or "zoo_algo" not in entry:
            raise ConfigError(f"{where}: needs at least 'zoo_algo'")
        _unknown(entry, ALGORITHM_FIELDS, where)
        equivalent = entry.get("equivalent")
        if equivalent == "all":
            equivalent = KNOBS
        elif equivalent is not None:
            if not isinstance(equivalent, list) or not set(equivalent) <= set(KNOBS) or not equivalent:
                raise ConfigError(f"{where}: 'equivalent' is 'all' or a list of {list(KNOBS)}; got {equivalent!r}")
            equivalent = tuple(equivalent)
        algorithms[name] = Algorithm(
            name=name,
            zoo_algo=str(entry["zoo_algo"]),
            label=str(entry.get("label", name)),
            conf=entry.get("conf"),
            discretized_as=entry.get("discretized_as"),
            twin=bool(entry.get("twin", False)),
            equivalent=equivalent,
        )
    for algorithm in algorithms.values():
        if algorithm.discretized_as is not None and algorithm.discretized_as not in ("sppo", "sa2c"):
            raise ConfigError(f"{path.name}, algorithm {algorithm.name!r}: discretized_as must be sppo or sa2c")
    presets: dict[str, Preset] = {}
    for name, entry in data["presets"].items():
        where = f"{path.name}, preset {name!r}"
        if not isinstance(entry, dict) or not {"envs", "seeds", "algos"} <= set(entry):
            raise ConfigError(f"{where}: needs 'envs', 'seeds' and 'algos'")
        _unknown(entry, PRESET_FIELDS, where)
        unknown_algos = [algo for algo in entry["algos"] if algo not in algorithms]
        if unknown_algos:
            raise ConfigError(f"{where}: unknown algorithm(s) {unknown_algos}; defined: {sorted(algorithms)}")
        envs = []
        for spec in entry["envs"]:
            _unknown(spec, ENV_FIELDS, f"{where}, env {spec.get('env')!r}")
            noises = tuple(str(noise) for noise in spec.get("noises", ["clean"]))
            for noise in noises:
                noise_callback(noise)
            envs.append(
                EnvSpec(
                    str(spec["env"]),
                    _positive_int(spec["budget"], f"{where}, budget of {spec['env']}"),
                    noises,
                    bool(spec.get("discretized", False)),
                )
            )
        presets[name] = Preset(
            name=name,
            envs=tuple(envs),
            seeds=_positive_int(entry["seeds"], f"{where}, seeds"),
            algos=tuple(entry["algos"]),
            n_evals=_positive_int(entry.get("n_evals", 10), f"{where}, n_evals"),
            eval_episodes=_positive_int(entry.get("eval_episodes", 5), f"{where}, eval_episodes"),
            note=str(entry.get("note", "")),
        )
    return algorithms, presets


ALGORITHMS, PRESETS = load_catalog()


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; presets: {', '.join(sorted(PRESETS))} (benchmarks/presets.yml)")
    return PRESETS[name]


# ---------------------------------------------------------------- a run and its RL-Zoo command


def setting_name(noise: str) -> str:
    """``"flip:0.1"`` -> ``"flip0.1"``; ``"clean"`` stays."""
    return noise.replace(":", "")


@dataclass(frozen=True)
class Run:
    """One RL-Zoo training of the grid."""

    algo: str
    env: str
    noise: str
    seed: int
    budget: int
    n_evals: int
    eval_episodes: int
    discretized: bool = False
    device: str = "cpu"
    # extra RL-Zoo -params overrides, as (name, Python literal) pairs: part of the run's identity
    overrides: tuple[tuple[str, str], ...] = field(default=())

    @property
    def setting(self) -> str:
        return setting_name(self.noise)

    @property
    def name(self) -> str:
        return f"{self.setting}/{self.env}/{self.algo}/seed{self.seed}/{self.budget}"

    @property
    def algorithm(self) -> Algorithm:
        return ALGORITHMS[self.algo]

    def to_dict(self) -> dict[str, Any]:
        record = asdict(self)
        record["overrides"] = [list(pair) for pair in self.overrides]
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Run:
        return cls(**{**record, "overrides": tuple(tuple(pair) for pair in record.get("overrides", ()))})


def zoo_entry(algo: str, env: str, conf: Path | None = None) -> dict[str, Any]:
    """The YAML entry RL-Zoo reads for ``algo`` on ``env`` (``conf``, ours for sppo/sa2c, or RL-Zoo's own)."""
    if conf is None:
        if algo in ("sppo", "sa2c"):
            from sb3_symmetric.zoo import hyperparams_file

            conf = hyperparams_file(algo)
        else:
            import rl_zoo3

            conf = Path(rl_zoo3.__file__).parent / "hyperparams" / f"{algo}.yml"
    entries = yaml.safe_load(conf.read_text()) or {}
    if env in entries:
        return dict(entries[env])
    if "atari" in entries and (env.endswith("NoFrameskip-v4") or env.startswith("ALE/")):
        return dict(entries["atari"])
    raise KeyError(f"No {algo} entry for {env} in {conf}")


def _conf_file(algorithm: Algorithm, env: str) -> Path | None:
    """The algorithm's -conf file when it exists and has an entry for ``env``; None: RL-Zoo's own YAML."""
    if algorithm.conf is None:
        return None
    path = ROOT / algorithm.conf
    if not path.is_file():
        return None
    try:
        zoo_entry(algorithm.zoo_algo, env, path)
    except KeyError:
        return None
    return path


def python_literal(value: Any) -> str:
    """A value as RL-Zoo evaluates it (``-params`` and ``policy_kwargs`` strings), free of single quotes."""
    if isinstance(value, (list, tuple)):
        inner = ",".join(python_literal(item) for item in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        if all(isinstance(key, str) and key.isidentifier() for key in value):
            return "dict(" + ",".join(f"{key}={python_literal(item)}" for key, item in value.items()) + ")"
        return "{" + ",".join(f"{python_literal(key)}:{python_literal(item)}" for key, item in value.items()) + "}"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, type):
        # names as RL-Zoo's exp_manager module has them in scope
        module = value.__module__
        if module.startswith("torch.nn"):
            return f"nn.{value.__name__}"
        if module.startswith("torch.optim"):
            return f"th.optim.{value.__name__}"
        return value.__name__
    return repr(value)


# SymPPO's coefficients: they make the weight of its policy gradient, never a stock algorithm's argument
COEFFICIENTS = ("alpha", "beta", "rce_z")


def _zoo_eval(literal: str) -> Any:
    """A ``-params`` value or ``policy_kwargs`` string, evaluated as RL-Zoo does (``th`` and ``nn`` in scope)."""
    import torch as th
    from torch import nn

    return eval(literal, {"th": th, "nn": nn})


def _given_overrides(run: Run) -> dict[str, Any]:
    return {name: _zoo_eval(literal) for name, literal in run.overrides}


def _equivalent_kwargs(run: Run, entry: dict[str, Any]) -> dict[str, Any]:
    """Stock PPO's YAML entry (``policy_kwargs`` as a dict) that trains like SymPPO's YAML entry ``entry``."""
    import sb3_symmetric

    ppo_equivalent = getattr(sb3_symmetric, "ppo_equivalent", None)
    if ppo_equivalent is None:
        raise ConfigError(f"algorithm {run.algo!r} needs sb3_symmetric.ppo_equivalent, which this version does not have")
    entry = dict(entry)
    coefficients = {name: float(entry.pop(name)) for name in COEFFICIENTS if name in entry}
    zoo_only = {key: entry.pop(key) for key in list(entry) if key in ZOO_KEYS}
    if isinstance(entry.get("policy_kwargs"), str):
        entry["policy_kwargs"] = _zoo_eval(entry["policy_kwargs"])
    knobs = run.algorithm.equivalent
    return {**zoo_only, **ppo_equivalent(**coefficients, knobs=None if knobs == KNOBS else knobs, **entry)}


def _equivalent(run: Run) -> tuple[dict[str, Any], dict[str, Any]]:
    """The stock-PPO equivalent of SymPPO with sppo.yml's entry for ``run.env`` and ``run.overrides``
    (docs/paper.rst, "Stock-PPO equivalent"): the converted entry, and the ``-params`` that the overrides become.

    The overrides are SymPPO's: an override of a knob (``vf_coef``, ``ent_coef``, ``max_grad_norm``,
    ``policy_kwargs``) is converted like the entry's, and one of ``alpha``, ``beta`` or ``rce_z`` converts the
    entry's knobs with its weight; overrides the conversion leaves as they are keep their text.
    """
    sppo_entry = zoo_entry("sppo", run.env)
    base = _equivalent_kwargs(run, sppo_entry)
    given = _given_overrides(run)
    converted = _equivalent_kwargs(run, {**sppo_entry, **given}) if given else base
    texts = dict(run.overrides)
    params = {
        name: _Literal(texts[name]) if converted[name] == value else converted[name]
        for name, value in given.items()
        if name in converted
    }
    params.update({name: value for name, value in converted.items() if name not in given and value != base.get(name)})
    entry = dict(base)
    if isinstance(entry.get("policy_kwargs"), dict):
        entry["policy_kwargs"] = python_literal(entry["policy_kwargs"])
    return entry, params


@dataclass(frozen=True)
class ZooCall:
    """What RL-Zoo is asked to train: ``--algo``, an optional generated ``-conf`` entry or file, ``-params``."""

    zoo_algo: str
    params: dict[str, Any]
    conf_file: Path | None = None
    conf_entry: dict[str, Any] | None = None


def zoo_call(run: Run) -> ZooCall:
    """RL-Zoo algorithm, configuration and ``-params`` overrides that turn RL-Zoo into this run's algorithm."""
    algorithm = run.algorithm
    params: dict[str, Any] = {}
    conf_file = conf_entry = None
    overrides: dict[str, Any] = {name: _Literal(literal) for name, literal in run.overrides}
    if algorithm.twin:
        # docs/paper.rst, "Formulas": SPPO's reverse gradient is |Z| x PPO's, so the twin is PPO weighted a + b|Z|
        from sb3_symmetric.equivalence import policy_weight

        entry = {**zoo_entry("sppo", run.env), **_given_overrides(run)}
        coefficients = {name: float(entry[name]) for name in COEFFICIENTS if name in entry}
        zoo_algo, params = "sppo", {"alpha": policy_weight(**coefficients), "beta": 0.0}
        overrides = {name: text for name, text in overrides.items() if name not in COEFFICIENTS}
    elif algorithm.equivalent is not None:
        zoo_algo = "ppo"
        conf_entry, overrides = _equivalent(run)
    elif run.discretized and algorithm.discretized_as is not None:
        # the paper's DPPO / DA2C: the symmetric algorithm on the discretized entry with the reverse term off
        zoo_algo, params = algorithm.discretized_as, {"alpha": 1.0, "beta": 0.0}
    else:
        zoo_algo, conf_file = algorithm.zoo_algo, _conf_file(algorithm, run.env)
    callback = noise_callback(run.noise)
    if callback is not None:
        params["callback"] = callback
    return ZooCall(zoo_algo, {**params, **overrides}, conf_file, conf_entry)


class _Literal(str):
    """An override given as a Python literal already: written as is."""


def _param_text(value: Any) -> str:
    return str(value) if isinstance(value, _Literal) else python_literal(value)


def zoo_argv(run: Run, folder: Path | str, write: bool = True) -> list[str]:
    """Arguments of ``python -m sb3_symmetric.zoo train`` for this run, logging into ``folder``.

    A generated configuration (the stock-PPO equivalents) is written to ``folder/conf.yml`` (with ``write``;
    without it only named, as a dry run shows the command).
    """
    call = zoo_call(run)
    folder = Path(folder)
    argv = ["--algo", call.zoo_algo, "--env", run.env, "-n", str(run.budget), "--seed", str(run.seed)]
    argv += ["--eval-freq", str(max(run.budget // run.n_evals, 1)), "--eval-episodes", str(run.eval_episodes)]
    argv += ["--num-threads", "1", "--device", run.device, "--verbose", "0", "-f", str(folder / "zoo")]
    if call.conf_entry is not None:
        if write:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "conf.yml").write_text(yaml.safe_dump({run.env: call.conf_entry}, sort_keys=True))
        argv += ["-conf", str(folder / "conf.yml")]
    elif call.conf_file is not None:
        # as the repository names it: runs start in its root, and a stored command holds on any checkout
        argv += ["-conf", str(call.conf_file.relative_to(ROOT))]
    if call.params:
        argv += ["-params", *(f"{key}:{_param_text(value)}" for key, value in call.params.items())]
    return argv


def zoo_command(run: Run, folder: Path | str, write: bool = True) -> str:
    return shlex.join(["python", "-m", "sb3_symmetric.zoo", "train", *zoo_argv(run, folder, write)])


def make_runs(
    preset: Preset,
    envs: Iterable[str] | None = None,
    algos: Iterable[str] | None = None,
    seeds: int | None = None,
    device: str = "cpu",
    budget_scale: float = 1.0,
) -> list[Run]:
    """All runs of a preset, seed-major (an interrupted grid has whole seeds of every cell); bad filters raise."""
    env_filter, algo_filter = list(envs or []), list(algos or [])
    known_envs = [spec.env for spec in preset.envs]
    for env in env_filter:
        if env not in known_envs:
            raise ConfigError(f"--envs {env!r} is not in preset {preset.name!r}; its envs: {', '.join(known_envs)}")
    for algo in algo_filter:
        if algo not in preset.algos:
            raise ConfigError(f"--algos {algo!r} is not in preset {preset.name!r}; its algorithms: {', '.join(preset.algos)}")
    n_seeds = preset.seeds if seeds is None else seeds
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
        raise ConfigError(f"--seeds must be at least 1; got {n_seeds!r}")
    if not (math.isfinite(budget_scale) and budget_scale > 0):
        raise ConfigError(f"--budget-scale must be a positive number; got {budget_scale!r}")
    runs = []
    for seed in range(n_seeds):
        for spec in preset.envs:
            if env_filter and spec.env not in env_filter:
                continue
            budget = max(int(spec.budget * budget_scale), 1)
            for noise in spec.noises:
                for algo in preset.algos:
                    if algo_filter and algo not in algo_filter:
                        continue
                    runs.append(
                        Run(
                            algo, spec.env, noise, seed, budget, preset.n_evals, preset.eval_episodes, spec.discretized, device
                        )
                    )
    return runs


# ---------------------------------------------------------------- code version and run identity


# What the grid and the report write: a change there is output, not a change to the code a run ran.
OUTPUT_DIRS = ("benchmarks/studies", "benchmarks/results", "benchmarks/runs")


def _git(*args: str, cwd: Path = ROOT) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def code_files() -> list[Path]:
    """The files whose content can change a run's result: the package, its YAML files, the benchmarks' -conf files."""
    import sb3_symmetric
    from sb3_symmetric.zoo import hyperparams_file

    package = Path(sb3_symmetric.__file__).resolve().parent
    files = [path for path in package.rglob("*.py") if "__pycache__" not in path.parts]
    files += hyperparams_file("sppo").resolve().parent.glob("*.yml")
    files += (ROOT / "benchmarks" / "hyperparams").glob("*.yml")
    return sorted(set(files))


_CODE: dict[str, Any] = {}


def code_hash() -> str:
    """The hash of :func:`code_files` as they are on disk now (each run's process imports them from there)."""
    digest = hashlib.sha256()
    for path in code_files():
        name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else Path(path.parent.name, path.name)
        digest.update(f"{name.as_posix()}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def code_version() -> dict[str, Any]:
    """``{"version", "hash", "libraries", "commit", "dirty"}``: hash and libraries identify runs; commit is information."""
    if not _CODE:
        import sb3_symmetric

        libraries = {}
        for library in LIBRARIES:
            with contextlib.suppress(importlib.metadata.PackageNotFoundError):
                libraries[library] = importlib.metadata.version(library)
        commit = _git("rev-parse", "HEAD")
        _CODE.update(
            version=sb3_symmetric.__version__,
            hash=code_hash(),
            libraries=libraries,
            commit=commit or None,
            dirty=uncommitted_changes() if commit else None,
        )
    return dict(_CODE)


def duration(seconds: float) -> str:
    """``"2.5 h"`` from an hour on, ``"12.0 min"`` below."""
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def uncommitted_changes(root: Path = ROOT) -> bool:
    """Whether tracked files of the checkout at ``root`` differ from its commit, outside :data:`OUTPUT_DIRS`."""
    excluded = [f":(exclude){folder}" for folder in OUTPUT_DIRS]
    return bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".", *excluded, cwd=root))


def code_label(code: dict[str, Any] | None) -> str:
    """``"0.1.0+3f2a9c... (commit 1a2b3c4d5e, with uncommitted changes)"``: dirty as :func:`uncommitted_changes` says."""
    if not code:
        return "unknown code version"
    commit = code.get("commit")
    where = f"commit {commit[:10]}{', with uncommitted changes' if code.get('dirty') else ''}" if commit else "no git commit"
    return f"{code['version']}+{code['hash']} ({where})"


def run_identity(run: Run, code: dict[str, Any]) -> dict[str, Any]:
    """Everything that changes the result of ``run``: the run, what RL-Zoo is asked, the code and library versions."""
    call = zoo_call(run)
    conf = call.conf_entry
    if call.conf_file is not None:
        conf = zoo_entry(call.zoo_algo, run.env, call.conf_file)
    return {
        "run": run.to_dict(),
        "zoo_algo": call.zoo_algo,
        "params": {key: _param_text(value) for key, value in call.params.items()},
        "conf": conf,
        "code": {"version": code["version"], "hash": code["hash"], "libraries": code["libraries"]},
    }


def run_key(run: Run, code: dict[str, Any]) -> str:
    """``<run name>@<hash of its identity>``: equal for two runs exactly when they would give the same result."""
    identity = json.dumps(run_identity(run, code), sort_keys=True, default=str)
    return f"{run.name}@{hashlib.sha256(identity.encode()).hexdigest()[:16]}"


# ---------------------------------------------------------------- the study


def default_storage(runs_dir: Path, study_name: str, create_folder: bool = False) -> str:
    """The journal file a grid uses when no ``--storage`` is given (its folder made with ``create_folder``)."""
    if create_folder:
        runs_dir.mkdir(parents=True, exist_ok=True)
    return str(runs_dir / f"{study_name}.log")


def shown(text: str, storage: str) -> str:
    """``text`` with the password of a database URL ``storage`` replaced by ``***`` (for messages and commands)."""
    if "://" not in storage:
        return text
    import sqlalchemy

    try:
        hidden = sqlalchemy.engine.make_url(storage).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return text
    return text.replace(storage, hidden)


def storage_failure(storage: str | None, error: BaseException) -> str | None:
    """
    One line for a storage that can no longer be reached or read, or None when ``error`` is something else.

    A lost database server: its name (password masked), the driver's reason and what to do. A journal file with a line
    that is not JSON: it was rewritten or cut under the workers (``git stash`` or ``checkout`` of a committed study, a
    full disk); Optuna's own error names neither the file nor the cause.
    """
    from sb3_symmetric.tuning import is_connection_lost, storage_lost_message

    name = storage if storage is not None else "the grid's default journal file"
    if storage is not None and is_connection_lost(error):
        return storage_lost_message(storage, error)
    if isinstance(error, json.JSONDecodeError) and (storage is None or "://" not in storage):
        return (
            f"the journal file {name!r} holds a line that is not JSON ({error.msg}): it was rewritten or cut while the "
            "grid ran (git stash, checkout or restore of a committed study; a full disk). Put back a whole copy (its "
            "finished runs count again) and rerun the same command"
        )
    return None


def _last_line(path: Path) -> str:
    """The last non-empty line of a worker's log: its one-line error, when it stopped on one."""
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()] if path.exists() else []
    return lines[-1].strip() if lines else "(empty log)"


def open_study(storage: str, study_name: str, create: bool) -> Any:
    """The grid's study; :class:`ConfigError` when ``create`` is False and it does not exist."""
    import optuna

    from sb3_symmetric.tuning import StorageError, heartbeat_interval_from_env, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not create and "://" not in storage and not Path(storage).exists():
        raise ConfigError(
            f"no grid storage at {storage!r}; start the grid with `python -m benchmarks.grid --preset ...` first"
        )
    try:
        opened = open_storage(storage, heartbeat_interval_from_env())
    except StorageError as error:
        raise ConfigError(str(error)) from None
    if create:
        return optuna.create_study(storage=opened, study_name=study_name, direction="maximize", load_if_exists=True)
    try:
        return optuna.load_study(study_name=study_name, storage=opened)
    except KeyError:
        names = optuna.get_all_study_names(storage=opened)
        raise ConfigError(shown(f"no grid named {study_name!r} in {storage!r}; it holds {names}", storage)) from None


def _state(name: str) -> Any:
    from optuna.trial import TrialState

    return TrialState[name]


def trials_by_key(study: Any, states: Iterable[str] | None = None) -> dict[str, list[Any]]:
    """Trials that carry a run, by run key (all states unless ``states`` names some)."""
    wanted = tuple(_state(name) for name in states) if states is not None else None
    by_key: dict[str, list[Any]] = {}
    for trial in study.get_trials(deepcopy=False, states=wanted):
        if KEY_ATTR in trial.user_attrs:
            by_key.setdefault(trial.user_attrs[KEY_ATTR], []).append(trial)
    return by_key


def enqueue(study: Any, runs: list[Run], code: dict[str, Any] | None = None) -> tuple[list[str], int]:
    """Add every run not already waiting, running or finished; returns the runs' keys and how many were added."""
    import optuna

    code = code or code_version()
    present = trials_by_key(study, ("WAITING", "RUNNING", "COMPLETE"))
    keys, added = [], 0
    for run in runs:
        key = run_key(run, code)
        keys.append(key)
        if key in present:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.enqueue_trial({}, user_attrs={KEY_ATTR: key, RUN_ATTR: run.to_dict(), CODE_ATTR: code})
        present[key] = []
        added += 1
    return keys, added


def progress(study: Any, keys: Iterable[str] | None = None) -> dict[str, int]:
    """Runs finished, running, waiting and failed (without a later try) among ``keys`` (default: all of the study)."""
    by_key = trials_by_key(study)
    wanted = list(dict.fromkeys(keys)) if keys is not None else list(by_key)
    counts = {"total": len(wanted), "finished": 0, "running": 0, "waiting": 0, "failed": 0}
    for key in wanted:
        states = {trial.state.name for trial in by_key.get(key, [])}
        for state, name in (("COMPLETE", "finished"), ("RUNNING", "running"), ("WAITING", "waiting"), ("FAIL", "failed")):
            if state in states:
                counts[name] += 1
                break
    return counts


# ---------------------------------------------------------------- processes: no orphans


def _die_with_parent(sig: int) -> Callable[[], None]:
    """preexec_fn: the child gets ``sig`` when its parent dies (Linux), so no run outlives its worker."""
    parent = os.getpid()

    def set_death_signal() -> None:
        if sys.platform.startswith("linux"):
            with contextlib.suppress(OSError, AttributeError):
                ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before the death signal was armed
            os._exit(1)

    return set_death_signal


def train_in_child(argv: list[str], log_path: Path, stop: Callable[[], bool]) -> int:
    """Run ``python -m sb3_symmetric.zoo train argv`` in its own session (Ctrl-C reaches the worker, not RL-Zoo).

    The child dies with this process (SIGKILL) and is killed when ``stop()`` turns true. Returns its exit status.
    """
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    with open(log_path, "w") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "sb3_symmetric.zoo", "train", *argv],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent(signal.SIGKILL),
        )
        try:
            while True:
                try:
                    return child.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    if stop():
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(child.pid, signal.SIGKILL)
        finally:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()


def read_result(folder: Path, run: Run) -> dict[str, Any] | None:
    """The run's evaluations if the saved model trained the whole budget, else None (interrupted, crashed)."""
    evaluations = sorted(folder.glob("zoo/*/*/evaluations.npz"))
    if len(evaluations) != 1:
        return None
    run_dir = evaluations[0].parent
    models = [path for path in run_dir.glob("*.zip") if path.name != "best_model.zip"]
    if len(models) != 1:
        return None
    try:
        with zipfile.ZipFile(models[0]) as archive:
            trained = int(json.loads(archive.read("data"))["num_timesteps"])
    except (zipfile.BadZipFile, KeyError, ValueError):
        return None
    # RL-Zoo saves the model on Ctrl-C too: only the step count says whether the run is finished
    if trained < run.budget:
        return None
    import numpy as np

    with np.load(evaluations[0]) as data:
        timesteps, results, lengths = data["timesteps"], data["results"], data["ep_lengths"]
    if len(timesteps) == 0:
        return None
    return {
        "num_timesteps": trained,
        "timesteps": [int(t) for t in timesteps],
        "returns": [[float(x) for x in row] for row in results],
        "ep_lengths": [[int(x) for x in row] for row in lengths],
        "final_return": float(np.mean(results[-1])),
    }


# ---------------------------------------------------------------- the worker


class _Stop:
    """Set by SIGINT / SIGTERM / SIGHUP: the worker kills its run, puts it back and exits."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self, signum: int, _frame: Any) -> None:
        self.signal = signum

    def __bool__(self) -> bool:
        return self.signal is not None


def _requeue(study: Any, trial: Any, why: str, count_as_retry: bool) -> None:
    """Fail a trial and queue its run again (as a retry of a killed worker, bounded, or as a fresh try)."""
    import optuna

    from sb3_symmetric.tuning import _retry_callback

    storage = study._storage
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_user_attr(trial._trial_id, ERROR_ATTR, why)
        if not storage.set_trial_state_values(trial._trial_id, state=_state("FAIL")):
            return
        if count_as_retry:
            _retry_callback()(study, storage.get_trial(trial._trial_id))
        else:
            attrs = storage.get_trial(trial._trial_id).user_attrs
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.enqueue_trial({}, user_attrs={key: attrs[key] for key in (KEY_ATTR, RUN_ATTR, CODE_ATTR)})


def _take(study: Any) -> Any | None:
    """Pop a waiting trial (RUNNING now, owned by this process), or None when none is waiting."""
    import optuna

    from sb3_symmetric.tuning import WORKER_ATTR, worker_record

    trial_id = study._pop_waiting_trial_id()
    if trial_id is None:
        return None
    trial = optuna.Trial(study, trial_id)
    study._storage.set_trial_user_attr(trial_id, WORKER_ATTR, worker_record(trial.number))
    return trial


def _recover(study: Any) -> list[int]:
    """Fail and re-queue the trials of dead workers: this machine's at once, others' by their stale heartbeat."""
    import datetime

    import optuna

    from sb3_symmetric.tuning import WORKER_ATTR, fail_dead_local_trials

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    recovered = fail_dead_local_trials(study)
    # a worker that died between taking a trial and naming itself in it left a trial nobody owns
    now = datetime.datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(_state("RUNNING"),)):
        unnamed = KEY_ATTR in trial.user_attrs and WORKER_ATTR not in trial.user_attrs
        if unnamed and trial.datetime_start is not None and (now - trial.datetime_start).total_seconds() > ORPHAN_S:
            _requeue(study, trial, "taken by a worker that died before naming itself", count_as_retry=True)
            recovered.append(trial.number)
    return recovered


def work(
    storage: str,
    study_name: str,
    work_dir: Path,
    max_runs: int | None = None,
    log: Callable[[str], None] = print,
) -> int:
    """Take runs of the study until none is waiting or running; 0 when done, 130 when stopped by a signal."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    stop = _Stop()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)
    study = open_study(storage, study_name, create=False)
    code = code_version()
    done = 0
    while not stop and (max_runs is None or done < max_runs):
        recovered = _recover(study)
        if recovered:
            log(f"re-queued trials {recovered}: their worker process is gone")
        trial = _take(study)
        if trial is None:
            counts = progress(study)
            if counts["running"] == 0 and counts["waiting"] == 0:
                return 0
            time.sleep(POLL_S)  # the last runs are running elsewhere; take them over if their worker dies
            continue
        attrs = trial.user_attrs
        key, run = attrs[KEY_ATTR], Run.from_dict(attrs[RUN_ATTR])
        # each run's process imports the package from disk: the code there now, not at this worker's start, counts
        code = {**code, "hash": code_hash()}
        if attrs[CODE_ATTR]["hash"] != code["hash"] or attrs[CODE_ATTR]["libraries"] != code["libraries"]:
            _requeue(study, trial, "taken by a worker with other code; put back", count_as_retry=False)
            log(
                f"this worker's code is {code_label(code)}, the grid's runs were made for "
                f"{code_label(attrs[CODE_ATTR])}: check out that code (and libraries) on this machine"
            )
            return 2
        others = [t for t in trials_by_key(study, ("COMPLETE", "RUNNING")).get(key, []) if t.number != trial.number]
        if others:
            study._storage.set_trial_user_attr(trial._trial_id, DUPLICATE_ATTR, others[0].number)
            study._storage.set_trial_state_values(trial._trial_id, state=_state("PRUNED"))
            continue
        folder = work_dir / f"trial{trial.number}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        argv = zoo_argv(run, folder)
        start = time.perf_counter()
        with get_heartbeat_thread(trial._trial_id, study._storage):
            status = train_in_child(argv, folder / "train.log", lambda: bool(stop))
        wall = time.perf_counter() - start
        if stop:
            _requeue(study, trial, f"interrupted by signal {stop.signal}", count_as_retry=False)
            log(f"interrupted: {run.name} is back in the queue")
            break
        if code_hash() != code["hash"]:
            _requeue(study, trial, "the code on disk changed while it trained", count_as_retry=False)
            log(
                f"the package or a hyperparameter file changed on disk while {run.name} trained: it is back in the "
                f"queue. The grid's runs are made with {code_label(code)}: restore that code to go on, or start "
                "a new grid for the new code"
            )
            return 2
        result = read_result(folder, run) if status == 0 else None
        if result is None:
            tail = (folder / "train.log").read_text(errors="replace")[-3000:]
            if status < 0 or status == 0:
                # killed from outside (e.g. out of memory) or RL-Zoo stopped early: try again, a bounded number of times
                _requeue(study, trial, f"stopped before its budget (exit {status}):\n{tail}", count_as_retry=True)
                log(f"{run.name} stopped before its budget (exit {status}); re-queued")
            else:
                study._storage.set_trial_user_attr(trial._trial_id, ERROR_ATTR, f"exit {status}:\n{tail}")
                study._storage.set_trial_state_values(trial._trial_id, state=_state("FAIL"))
                log(f"FAILED {run.name} (exit {status}); log: {folder / 'train.log'}\n{tail[-1500:]}")
            continue
        result.update(
            wall_s=round(wall, 3),
            host=socket.gethostname(),
            command=zoo_command(run, "<run folder>", write=False),
            ran_with={"commit": code["commit"], "dirty": code["dirty"]},
        )
        import optuna

        try:
            study._storage.set_trial_user_attr(trial._trial_id, RESULT_ATTR, result)
            study._storage.set_trial_state_values(trial._trial_id, state=_state("COMPLETE"), values=[result["final_return"]])
        except optuna.exceptions.UpdateFinishedTrialError:
            log(f"{run.name}: its trial was failed meanwhile (stale heartbeat); the re-queued copy counts")
            continue
        shutil.rmtree(folder / "zoo", ignore_errors=True)  # results live in the study
        done += 1
    return EXIT_INTERRUPTED if stop else 0


# ---------------------------------------------------------------- many workers on this machine


def worker_command(storage: str, study_name: str, work_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "benchmarks.grid",
        "--worker",
        "--workers",
        "1",
        "--storage",
        storage,
        "--study-name",
        study_name,
        "--work-dir",
        str(work_dir),
    ]


@contextlib.contextmanager
def _forward_signals(handler: Callable[[int, Any], None]) -> Iterator[None]:
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_workers(
    storage: str,
    study_name: str,
    workers: int,
    work_dir: Path,
    keys: list[str] | None = None,
    resume_hint: str = "",
) -> int:
    """Start ``workers`` worker processes on the study and show progress until they end; the exit status to return.

    Workers die with this process (their death signal is SIGTERM: they put their runs back). A worker that dies is
    replaced (its run goes back to the queue); Ctrl-C stops all of them and says how to resume.
    """
    from tqdm import tqdm

    study = open_study(storage, study_name, create=False)
    work_dir.mkdir(parents=True, exist_ok=True)
    command = worker_command(storage, study_name, work_dir)
    logs = work_dir / "workers"
    logs.mkdir(exist_ok=True)
    stop = _Stop()

    def start(index: int) -> subprocess.Popen:
        with open(logs / f"worker{index}.log", "a") as log:
            return subprocess.Popen(
                command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent(signal.SIGTERM)
            )

    counts = progress(study, keys)
    bar = tqdm(total=counts["total"], initial=counts["finished"], unit="run", dynamic_ncols=True, smoothing=0.05)
    replacements = 0
    with _forward_signals(stop):
        processes = {index: start(index) for index in range(workers)}
        while processes:
            time.sleep(POLL_S)
            for index, process in list(processes.items()):
                status = process.poll()
                if status is None:
                    continue
                del processes[index]
                if status < 0 and not stop and replacements < 3 * workers:
                    bar.write(
                        f"worker {index} (pid {process.pid}) was killed by signal {-status}; its run goes back "
                        "to the queue and a new worker takes over"
                    )
                    replacements += 1
                    processes[index] = start(index)
                elif status not in (0, EXIT_INTERRUPTED):
                    log_path = logs / f"worker{index}.log"
                    bar.write(f"worker {index} exited with status {status}: {_last_line(log_path)} (log: {log_path})")
            if stop:
                for process in processes.values():
                    with contextlib.suppress(ProcessLookupError):
                        process.send_signal(signal.SIGTERM)
                for process in processes.values():
                    process.wait()
                processes = {}
            counts = progress(study, keys)
            bar.n = counts["finished"]
            bar.set_postfix_str(f"{counts['running']} running, {counts['failed']} failed", refresh=False)
            bar.refresh()
    bar.close()
    resume_hint = shown(resume_hint, storage)
    counts = progress(study, keys)
    print(
        f"{counts['finished']} of {counts['total']} runs finished ({counts['failed']} failed, "
        f"{counts['waiting'] + counts['running']} not yet run) in study {study_name!r} at {shown(storage, storage)}"
    )
    if stop:
        print(f"Interrupted: unfinished runs are back in the queue. Resume with:\n    {resume_hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if counts["finished"] < counts["total"]:
        for trial in study.get_trials(deepcopy=False, states=(_state("FAIL"),)):
            key = trial.user_attrs.get(KEY_ATTR)
            if (keys is None or key in keys) and progress(study, [key])["finished"] == 0:
                print(f"FAILED {key}:\n{trial.user_attrs.get(ERROR_ATTR, '')[-800:]}", file=sys.stderr)
        print(f"Not every run finished. Rerun to retry the failed ones:\n    {resume_hint}", file=sys.stderr)
        return 1
    return 0


def finished_runs(study: Any) -> list[dict[str, Any]]:
    """Every COMPLETE run of the study: its run fields, key, code and result (one per key, the earliest)."""
    records = {}
    for trial in sorted(study.get_trials(deepcopy=False, states=(_state("COMPLETE"),)), key=lambda t: t.number):
        attrs = trial.user_attrs
        if KEY_ATTR not in attrs or RESULT_ATTR not in attrs or attrs[KEY_ATTR] in records:
            continue
        records[attrs[KEY_ATTR]] = {
            **attrs[RUN_ATTR],
            "key": attrs[KEY_ATTR],
            "code": attrs[CODE_ATTR],
            **attrs[RESULT_ATTR],
            "trial": trial.number,
        }
    return list(records.values())
