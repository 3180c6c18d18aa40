"""The package's version, the one source of truth for a release (RELEASING.md).

A module of its own, importing nothing, so that any module (``runtime``'s release tag) can read it
at the top without importing the package root; ``pyproject.toml`` reads it too
(``[tool.setuptools.dynamic] version``).
"""

__version__ = "0.1.0"
