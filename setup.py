"""
Build steps pyproject.toml cannot express: ship ``sb3_symmetric_zoo_hook.pth`` at the root of site-packages.

A ``.pth`` file must sit directly in site-packages, outside any package, so neither package data nor
``data-files`` can place it. The line it holds makes the plain ``rl_zoo3`` command register SymPPO and
SymA2C (see ``_sb3_symmetric_zoo_hook.py``). Everything else about the build lives in pyproject.toml.
"""

from __future__ import annotations

import os

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.editable_wheel import editable_wheel

HOOK_PTH = "sb3_symmetric_zoo_hook.pth"
HOOK_LINE = "import _sb3_symmetric_zoo_hook; _sb3_symmetric_zoo_hook.install()\n"


class BuildPyWithHook(build_py):
    """``build_py`` that also writes the hook's ``.pth`` into the root of the wheel."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            with open(os.path.join(self.build_lib, HOOK_PTH), "w", encoding="utf-8") as pth:
                pth.write(HOOK_LINE)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = super().get_outputs(include_bytecode)
        return outputs if self.editable_mode else [*outputs, os.path.join(self.build_lib, HOOK_PTH)]


class _AddHookPth:
    """Wraps an editable-install strategy so the editable wheel also carries the hook's ``.pth``."""

    def __init__(self, strategy) -> None:
        self.strategy = strategy

    def __call__(self, wheel, files, mapping) -> None:
        self.strategy(wheel, files, mapping)
        wheel.writestr(HOOK_PTH, HOOK_LINE.encode())

    def __enter__(self) -> _AddHookPth:
        self.strategy.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self.strategy.__exit__(*exc_info)


class EditableWheelWithHook(editable_wheel):
    """``pip install -e .``: setuptools drops generated top-level files from editable wheels, so add the ``.pth`` here.

    ``_select_strategy`` is setuptools-internal; if a future setuptools renames it, editable installs
    simply lack the hook (``python -m sb3_symmetric.zoo`` still works) and regular installs are unaffected.
    """

    def _select_strategy(self, name, tag, build_lib):
        return _AddHookPth(super()._select_strategy(name, tag, build_lib))


setup(cmdclass={"build_py": BuildPyWithHook, "editable_wheel": EditableWheelWithHook})
