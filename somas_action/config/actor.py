"""Who is acting when a person runs `somas` locally."""

from __future__ import annotations

import getpass
import os


def default_actor() -> str:
    """`$SOMAS_ACTOR`, else `local:<login name>`."""
    explicit = os.environ.get("SOMAS_ACTOR")
    if explicit:
        return explicit
    try:
        return f"local:{getpass.getuser()}"
    except (KeyError, OSError):
        return "local:unknown"
