"""
The documentation: the Sphinx site builds without a warning, the README stays a front page whose links resolve,
and the repository cites only what it ships (the paper notes page and its sections, never a file outside it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAPER_SECTIONS = ["Formulas", "Stock-PPO equivalent", "Continuous actions", "Noise settings", "Hyperparameters", "Results"]
# Notes that live outside the repository (the paper notes' markdown file, the shared folder beside the checkout)
OUTSIDE_CITATION = re.compile(rb"paper[.]md|[.][.][/]shared")


def tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / name for name in listing.decode().split("\0") if name]


def test_sphinx_build_has_no_warning(tmp_path: Path) -> None:
    # The same command as `make docs`, into a scratch folder
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", "docs", str(tmp_path / "html")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"sphinx-build failed:\n{result.stdout}\n{result.stderr}"
    api = (tmp_path / "html" / "api.html").read_text()
    documented = (
        "sb3_symmetric.SymPPO",
        "sb3_symmetric.SymA2C",
        "sb3_symmetric.SymRecurrentPPO",
        "sb3_symmetric.SymMaskablePPO",
        "sb3_symmetric.losses.SymmetricPolicyLoss",
        "sb3_symmetric.losses.ppo_reverse_loss",
        "sb3_symmetric.equivalence.ppo_equivalent",
        "sb3_symmetric.equivalence.KNOBS",
        "sb3_symmetric.common.minatar.MinAtarPolicy",
        "sb3_symmetric.common.minatar.register_minatar_envs",
    )
    for name in documented:
        assert f'id="{name}"' in api, f"{name} is missing from the API reference"


def test_api_reference_shows_the_real_knobs() -> None:
    # KNOBS has no docstring of its own, so docs/api.rst writes its value out: it must be the code's
    from sb3_symmetric.equivalence import KNOBS

    text = (REPO / "docs" / "api.rst").read_text()
    values = re.findall(r"py:data:: KNOBS\n\s+:module: sb3_symmetric\.equivalence\n\s+:value: (.+)", text)
    assert values == [repr(KNOBS)], f"docs/api.rst shows KNOBS as {values}; the code has {KNOBS!r}"


def test_paper_notes_have_the_cited_sections() -> None:
    text = (REPO / "docs" / "paper.rst").read_text()
    titles = re.findall(r"^(.+)\n-{3,}$", text, flags=re.MULTILINE)
    assert titles == PAPER_SECTIONS


def test_citations_of_the_paper_notes_name_real_sections() -> None:
    pattern = re.compile(r"docs/paper\.rst``?,\s*\"([^\"]+)\"")
    wrong = []
    for path in tracked_files():
        if path.suffix in {".py", ".yml", ".md", ".rst", ".toml", ".cfg"}:
            for section in pattern.findall(path.read_text(errors="replace")):
                if section not in PAPER_SECTIONS:
                    wrong.append(f"{path.relative_to(REPO)}: {section!r}")
    assert not wrong, f"citations of sections docs/paper.rst does not have (it has {PAPER_SECTIONS}): {wrong}"


def test_repository_cites_no_file_outside_it() -> None:
    found = []
    for path in tracked_files():
        if not path.is_file():
            continue
        data = path.read_bytes()
        for number, line in enumerate(data.splitlines(), 1):
            if OUTSIDE_CITATION.search(line):
                found.append(f"{path.relative_to(REPO)}:{number}")
    assert not found, f"cite docs/paper.rst (or the paper) instead of notes outside the repository: {found}"


def test_readme_is_a_front_page_whose_links_resolve() -> None:
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    # CI runs the README's test command
    assert "make test" in text
    targets = re.findall(r"\]\(([^)#\s]+)\)", text)
    local = [target for target in targets if "://" not in target]
    assert local, "the README links into the docs"
    missing = [target for target in local if not (REPO / target).exists()]
    assert not missing, f"README links to files that do not exist: {missing}"
