"""Sphinx configuration of the sb3-symmetric documentation (``make docs``)."""

import sys
from pathlib import Path

# Document the checkout this file belongs to, not another installed copy
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sb3_symmetric

project = "sb3-symmetric"
author = "sb3-symmetric contributors"
copyright = "2026, sb3-symmetric contributors"
version = release = sb3_symmetric.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# `Tensor` rather than `torch.Tensor` in the parameter lists
autodoc_typehints_format = "short"

exclude_patterns = ["_build"]
html_theme = "sphinx_rtd_theme"
html_title = f"sb3-symmetric {release}"
