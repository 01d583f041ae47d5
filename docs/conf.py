"""Sphinx configuration for the Flask-Alembic documentation."""

from __future__ import annotations

from importlib import metadata

project = "Flask-Alembic"
author = "Flask-Alembic contributors"
copyright = "Flask-Alembic contributors"

try:
    release = metadata.version("Flask-Alembic")
except metadata.PackageNotFoundError:  # building from a checkout that is not installed
    release = "4.0.0.dev0"
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
]

source_suffix = {
    ".md": "markdown",
}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

myst_enable_extensions = [
    "colon_fence",
    "deflist",
]
# Give every heading down to level 3 an anchor, so pages can link to sections.
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"Flask-Alembic {release}"
