"""
Start-up hook that makes the plain ``rl_zoo3`` command know ``--algo sppo`` and ``--algo sa2c``.

``sb3_symmetric_zoo_hook.pth`` (installed next to this module in site-packages) calls :func:`install`
at interpreter start. That only puts :class:`RLZooImportHook` on ``sys.meta_path``: nothing is imported,
so start-up pays for one tiny module. The first time ``rl_zoo3`` is imported, the hook takes itself off
``sys.meta_path``, lets the regular finders load ``rl_zoo3``, and right after the package body has run
calls :func:`sb3_symmetric.zoo.register`. Interpreters that skip ``.pth`` files (``python -S``, some
embedded or frozen set-ups) use ``python -m sb3_symmetric.zoo`` instead, which registers explicitly.
"""

import sys

TARGET = "rl_zoo3"


class RLZooImportHook:
    """Meta path finder that answers for ``rl_zoo3`` only, once, and registers the symmetric algorithms after it loads."""

    @classmethod
    def find_spec(cls, fullname, path=None, target=None):
        if fullname != TARGET:
            return None
        uninstall()
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            spec = None if find_spec is None else find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _RegisterAfterExec(spec.loader)
        return spec


class _RegisterAfterExec:
    """Loader proxy: runs the real loader, puts it back on the module, then registers with RL-Zoo."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        # the module keeps no trace of the proxy: importlib.reload() and friends see the real loader
        module.__loader__ = module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        _register()

    def __getattr__(self, name):
        return getattr(self.loader, name)


def _register():
    try:
        from sb3_symmetric.zoo import register

        register()
    except Exception as error:  # a broken sb3-symmetric must not break rl_zoo3's own algorithms
        import warnings

        warnings.warn(
            f"sb3-symmetric could not register SymPPO/SymA2C with RL-Zoo: {error!r}. "
            "`python -m sb3_symmetric.zoo train ...` registers explicitly and shows the full error.",
            stacklevel=2,
        )


def install():
    """Put the hook first on ``sys.meta_path`` unless ``rl_zoo3`` is already imported (called from the ``.pth`` file)."""
    if TARGET not in sys.modules and RLZooImportHook not in sys.meta_path:
        sys.meta_path.insert(0, RLZooImportHook)


def uninstall():
    """Take the hook off ``sys.meta_path``."""
    if RLZooImportHook in sys.meta_path:
        sys.meta_path.remove(RLZooImportHook)
