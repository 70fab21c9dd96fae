"""Toolchains a sandboxed command may use although $HOME is not there.

rustup keeps its toolchains in ~/.rustup and pyenv its Pythons in ~/.pyenv (on GitHub's images
too: /home/runner/.cargo/bin is on PATH). Those folders, and every PATH folder, are shown
read-only, and the variables that let the tools find them without $HOME are set. Nothing else
of $HOME is shown; a folder that holds credentials (~/.cargo itself, with credentials.toml) is
not, only its `bin`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from somas_action.sandbox.environment import sandbox_path

_HOMES = (("RUSTUP_HOME", ".rustup"), ("PYENV_ROOT", ".pyenv"), ("GOROOT", None))


@dataclass(frozen=True)
class Toolchains:
    """Folders to show read-only, and variables that point the tools at them."""

    folders: tuple[Path, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


def find_toolchains(
    parent: Mapping[str, str], hidden: Sequence[Path], extra: Sequence[str] = ()
) -> Toolchains:
    """The PATH folders (minus `hidden` ones), rustup/pyenv/Go homes, and `extra` folders."""
    home = Path(parent.get("HOME", "~")).expanduser()
    folders = [
        Path(p).resolve() for p in sandbox_path(parent.get("PATH", ""), hidden).split(":") if p
    ]
    env: dict[str, str] = {}
    for name, default in _HOMES:
        value = parent.get(name) or (str(home / default) if default else "")
        if value and Path(value).is_dir():
            folders.append(Path(value).resolve())
            env[name] = str(Path(value).resolve())
    folders += [Path(os.path.expanduser(p)).resolve() for p in extra]
    existing = [f for f in dict.fromkeys(folders) if f.is_dir() and f != home.resolve()]
    return Toolchains(tuple(existing), env)
