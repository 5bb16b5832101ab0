"""
RL-Zoo glue: ``--algo sppo`` and ``--algo sa2c`` for every rl_zoo3 script, with this package's YAML files as defaults.

RL-Zoo has no plugin mechanism, so :func:`register` edits rl_zoo3 in place: it adds SymPPO and SymA2C
to ``rl_zoo3.utils.ALGOS`` (the one dict every rl_zoo3 script takes its ``--algo`` choices from), makes
``ExperimentManager`` read ``hyperparams/{sppo,sa2c}.yml`` from this package when no ``-conf`` is given,
and registers the Optuna samplers (:func:`sb3_symmetric.tuning.register`). Built-in algorithms are untouched.
When ``minatar`` is installed, its ``MinAtar/<Game>-v1`` ids are registered too (the packaged YAML has entries for them).

After ``pip install sb3-symmetric`` a ``.pth`` start-up hook (``_sb3_symmetric_zoo_hook``) calls
:func:`register` the moment ``rl_zoo3`` is imported, so ``rl_zoo3 train --algo sppo`` works as is.
``python -m sb3_symmetric.zoo <command> [args]`` does the same explicitly, for interpreters that skip
``.pth`` files.
"""

from __future__ import annotations

import functools
import inspect
import runpy
import sys
from pathlib import Path
from typing import Any

ZOO_ALGOS = ("sppo", "sa2c", "sppo_lstm")

# `rl_zoo3 <command>` (rl_zoo3/cli.py) ...
CLI_COMMANDS = ("train", "enjoy", "plot_train", "plot_from_file", "all_plots")
# ... and the scripts rl_zoo3 runs as `python -m rl_zoo3.<module>`
MODULE_COMMANDS = {
    "record_video": "rl_zoo3.record_video",
    "record_training": "rl_zoo3.record_training",
    "push_to_hub": "rl_zoo3.push_to_hub",
    "load_from_hub": "rl_zoo3.load_from_hub",
}

PROG = "python -m sb3_symmetric.zoo"
USAGE = f"""usage: {PROG} <command> [arguments of that rl_zoo3 command]

Registers SymPPO (--algo sppo) and SymA2C (--algo sa2c) with RL-Zoo, then runs the rl_zoo3 command.
commands: {", ".join((*CLI_COMMANDS, *MODULE_COMMANDS))}
example:  {PROG} train --algo sppo --env CartPole-v1"""

# set on ExperimentManager.__init__ once it has been wrapped, so register() can be called any number of times
_WRAPPED_MARK = "_sb3_symmetric_default_config"


def hyperparams_file(algo: str) -> Path:
    """
    The YAML file ``rl_zoo3 train --algo <algo>`` reads when no ``-conf`` is given.

    :param algo: ``"sppo"`` or ``"sa2c"``
    :return: ``sb3_symmetric/hyperparams/<algo>.yml`` in an installed wheel, ``hyperparams/<algo>.yml``
        at the repository root in a source checkout or editable install
    """
    if algo not in ZOO_ALGOS:
        raise ValueError(f"sb3-symmetric ships hyperparameters for {', '.join(ZOO_ALGOS)}; got {algo!r}.")
    package_dir = Path(__file__).parent
    candidates = [package_dir / "hyperparams" / f"{algo}.yml", package_dir.parent / "hyperparams" / f"{algo}.yml"]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{algo}.yml not found in {[str(c.parent) for c in candidates]}; reinstall sb3-symmetric.")


def register() -> None:
    """Make rl_zoo3 know ``sppo`` and ``sa2c``: their classes, default YAML files and Optuna samplers. Idempotent."""
    from rl_zoo3 import exp_manager, utils

    from sb3_symmetric import SymA2C, SymPPO, SymRecurrentPPO, tuning
    from sb3_symmetric.common.minatar import register_minatar_envs

    # train, enjoy, record_video and exp_manager all hold this same dict object
    utils.ALGOS.update(sppo=SymPPO, sa2c=SymA2C, sppo_lstm=SymRecurrentPPO)
    _default_to_packaged_yaml(exp_manager.ExperimentManager)
    tuning.register()
    # rl_zoo3 checks --env against gymnasium's registry; MinAtar's ids only exist once registered
    register_minatar_envs()


def _default_to_packaged_yaml(manager_class: Any) -> None:
    # ExperimentManager builds its default path, rl_zoo3/hyperparams/{algo}.yml, inside __init__ from its own
    # __file__; filling in the `config` argument for our algorithms is the narrowest change that redirects it.
    init = manager_class.__init__
    if getattr(init, _WRAPPED_MARK, False):
        return
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(*args: Any, **kwargs: Any) -> None:
        bound = signature.bind(*args, **kwargs)
        algo = bound.arguments.get("algo")
        if bound.arguments.get("config") is None and algo in ZOO_ALGOS:
            bound.arguments["config"] = str(hyperparams_file(algo))
        init(*bound.args, **bound.kwargs)

    setattr(__init__, _WRAPPED_MARK, True)
    manager_class.__init__ = __init__


def main(argv: list[str] | None = None) -> None:
    """
    ``python -m sb3_symmetric.zoo <command> [args]``: :func:`register`, then run that rl_zoo3 command with ``args``.

    :param argv: command and its arguments (default: ``sys.argv[1:]``)
    """
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return
    if not args or (args[0] not in CLI_COMMANDS and args[0] not in MODULE_COMMANDS):
        got = f"unknown command {args[0]!r}" if args else "no command given"
        print(f"{USAGE}\n{PROG}: error: {got}", file=sys.stderr)
        sys.exit(2)
    command, rest = args[0], args[1:]
    register()
    if command in CLI_COMMANDS:
        from rl_zoo3.cli import main as rl_zoo3_main

        # rl_zoo3.cli.main() takes the command from sys.argv[1], exactly as the `rl_zoo3` console script
        sys.argv = [f"{PROG} {command}", command, *rest]
        rl_zoo3_main()
    else:
        sys.argv = [MODULE_COMMANDS[command], *rest]
        runpy.run_module(MODULE_COMMANDS[command], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
