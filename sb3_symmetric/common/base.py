"""What the symmetric algorithms share besides the loss: coefficients, checks, statistics and checkpoint loading."""

from __future__ import annotations

import inspect
import io
import pathlib
import warnings
import zipfile
from typing import Any, ClassVar, TypeVar

from stable_baselines3.common.save_util import json_to_data, open_path

from sb3_symmetric.common.checks import check_action_space
from sb3_symmetric.losses import SymmetricPolicyLoss, check_symmetric_coefficients

SelfSymmetric = TypeVar("SelfSymmetric", bound="SymmetricLossMixin")


def saved_algorithm_name(data: dict[str, Any]) -> str | None:
    """
    Which algorithm saved a checkpoint, read from its data: SB3 does not store the class, so its attributes tell.

    :param data: the deserialized ``data`` entry of an SB3 checkpoint
    :return: ``"PPO"``, ``"A2C"``, ``"RecurrentPPO"``, ``"MaskablePPO"``, ``"TRPO"``, each with a ``"Sym"`` prefix
        when the checkpoint holds ``rce_z``; ``None`` for anything else
    """
    if "n_epochs" in data:
        name = "PPO"
        policy_class = data.get("policy_class")
        try:
            from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
            from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
        except ImportError:
            pass
        else:
            if isinstance(policy_class, type) and issubclass(policy_class, RecurrentActorCriticPolicy):
                name = "RecurrentPPO"
            elif isinstance(policy_class, type) and issubclass(policy_class, MaskableActorCriticPolicy):
                name = "MaskablePPO"
    elif "cg_max_steps" in data:
        name = "TRPO"
    elif "n_steps" in data and "normalize_advantage" in data:
        name = "A2C"
    else:
        return None
    return f"Sym{name}" if "rce_z" in data else name


def _read_checkpoint_data(path: str | pathlib.Path | io.BufferedIOBase, custom_objects: dict[str, Any] | None) -> Any:
    """The ``data`` entry of a checkpoint, without its parameters; the file position is left where it was."""
    file = open_path(path, "r", suffix="zip")
    position = file.tell()
    try:
        with zipfile.ZipFile(file) as archive:
            if "data" not in archive.namelist():
                return None
            with warnings.catch_warnings():
                # load() reads the data again and shows its warnings then
                warnings.simplefilter("ignore")
                return json_to_data(archive.read("data").decode(), custom_objects=custom_objects)
    finally:
        if file is path:
            file.seek(position)
        else:
            file.close()


class SymmetricLossMixin:
    """
    Mixin placed before ``PPO`` / ``A2C`` / ``RecurrentPPO`` / ``MaskablePPO``: holds ``alpha``, ``beta``, ``rce_z``,
    refuses bad ones and non-discrete action spaces at construction and in ``load()`` (both go through
    ``_setup_model``), logs the symmetric statistics, and warns when ``load()`` is given another class's checkpoint.
    """

    #: Parent's name, for the checkpoint check: a checkpoint saved by ``"Sym" + parent_name`` is this class's own
    parent_name: ClassVar[str]
    alpha: float
    beta: float
    rce_z: float
    action_space: Any
    logger: Any

    def _set_symmetric_coefficients(self, alpha: float, beta: float, rce_z: float) -> None:
        check_symmetric_coefficients(alpha, beta, rce_z)
        # Plain floats: NumPy scalars would otherwise travel into the saved model and the logs
        self.alpha = float(alpha)
        self.beta = float(beta)
        self.rce_z = float(rce_z)

    def _record_symmetric_stats(self, symmetric_loss: SymmetricPolicyLoss) -> None:
        """Log ``train/reverse_loss`` and ``train/adv_sign_flip_fraction`` (one host sync, after the update loop)."""
        for key, value in symmetric_loss.stats().items():
            self.logger.record(f"train/{key}", value)

    def _setup_model(self) -> None:
        # In load(), the coefficients and spaces come from the saved model or load()'s keyword arguments
        self._set_symmetric_coefficients(self.alpha, self.beta, self.rce_z)
        check_action_space(type(self).__name__, self.action_space)
        super()._setup_model()  # type: ignore[misc]

    @classmethod
    def load(  # type: ignore[misc]
        cls: type[SelfSymmetric],
        path: str | pathlib.Path | io.BufferedIOBase,
        env: Any = None,
        device: Any = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        **kwargs: Any,
    ) -> SelfSymmetric:
        """
        Load a model from a zip file, as the parent's ``load()``; warn when another class saved it.

        A stock ``PPO`` checkpoint loads into ``SymPPO`` (the weights fit), but it holds no ``alpha``, ``beta``,
        ``rce_z``: the class defaults would apply silently. Pass them as keyword arguments to choose them.

        :param path: path to the file (or a file-like) to load the agent from
        :param env: the new environment to run the loaded model on (``None`` to only predict)
        :param device: device on which the code should run
        :param custom_objects: objects to use instead of the stored ones, as in SB3's ``load()``
        :param print_system_info: whether to print the saved and the current system info
        :param force_reset: force a ``reset()`` before training
        :param kwargs: attributes to change when loading, e.g. ``alpha=1.0, beta=0.0``
        :return: the loaded model
        """
        data = _read_checkpoint_data(path, custom_objects)
        expected = f"Sym{cls.parent_name}"
        saved = saved_algorithm_name(data) if isinstance(data, dict) else None
        if saved != expected:
            message = f"{cls.__name__}.load(): the checkpoint was saved by {saved or 'an unknown algorithm'}, not {expected}."
            if saved is None or not saved.startswith("Sym"):
                defaults = {
                    name: inspect.signature(cls.__init__).parameters[name].default for name in ("alpha", "beta", "rce_z")
                }
                chosen = {name: kwargs.get(name, default) for name, default in defaults.items()}
                message += (
                    f" It holds no alpha/beta/rce_z, so these apply: {chosen} "
                    f"(pass them to load(), e.g. {cls.__name__}.load(path, alpha=1.0, beta=0.0) trains as the parent "
                    f"{cls.parent_name}, or load it with {saved or 'the class that saved it'})."
                )
            warnings.warn(message, UserWarning, stacklevel=2)
        return super().load(  # type: ignore[misc]
            path,
            env=env,
            device=device,
            custom_objects=custom_objects,
            print_system_info=print_system_info,
            force_reset=force_reset,
            **kwargs,
        )
