"""Where the schemas and the default `.somas/` live, installed or in a checkout."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
_DATA_DIR = _PACKAGE_DIR / "_data"
_CHECKOUT_DIR = _PACKAGE_DIR.parent


@cache
def schemas_dir() -> Path:
    """The `schemas/` folder: inside the wheel, or at the top of a source checkout."""
    installed = _DATA_DIR / "schemas"
    return installed if installed.is_dir() else _CHECKOUT_DIR / "schemas"


@cache
def default_somas_dir() -> Path:
    """The embedded default `.somas/` (config.yml and agents/)."""
    installed = _DATA_DIR / "somas"
    return installed if installed.is_dir() else _CHECKOUT_DIR / ".somas"


def recordings_dir() -> Path:
    """Recorded agent replies shipped with the package (the demo's, and test scenarios)."""
    return _PACKAGE_DIR / "recordings"


def consumer_workflow_template() -> Path:
    """The workflow `somas init` writes into a repository (`.github/workflows/somas.yml`)."""
    return _PACKAGE_DIR / "templates" / "somas.yml"
