"""The suite's own guard: a broken import of the project's code fails, it does not skip."""

import shutil
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def test_importorskip_of_a_project_module_fails_but_a_missing_optional_package_skips(tmp_path):
    shutil.copy(TESTS / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_module_level.py").write_text(
        'import pytest\nbroken = pytest.importorskip("benchmarks.no_such_module")\n\ndef test_a():\n    pass\n'
    )
    (tmp_path / "test_in_test.py").write_text(
        "import pytest\n\ndef test_b():\n    pytest.importorskip('sb3_symmetric.no_such_module')\n\n"
        "def test_optional():\n    pytest.importorskip('no_such_optional_package_xyz')\n"
    )
    module_level, in_test = (_pytest(tmp_path, name) for name in ("test_module_level.py", "test_in_test.py"))
    # a collection error stops the run (exit code 2) instead of reporting "skipped"
    assert module_level.returncode == 2, module_level.stdout
    assert "A module of this project must import" in module_level.stdout
    assert in_test.returncode == 1, in_test.stdout
    assert in_test.stdout.strip().splitlines()[-1].startswith("1 failed, 1 skipped"), in_test.stdout
    assert "A module of this project must import" in in_test.stdout


def _pytest(folder: Path, test_file: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test_file]
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=120)
