"""One module per `somas` command group; each has `register(subparsers)`."""

from __future__ import annotations

import argparse
from typing import Any, Protocol


class Subparsers(Protocol):
    """What `register` functions receive (argparse's private type, named)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """Add one subcommand."""
