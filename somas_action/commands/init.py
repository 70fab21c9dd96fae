"""`somas init`: scaffold the default `.somas/` into a repository."""

from __future__ import annotations

import shutil
from pathlib import Path

from somas_action import names
from somas_action.commands import Subparsers
from somas_action.errors import SomasError
from somas_action.resources import default_somas_dir


def scaffold(repo: Path, force: bool = False) -> list[Path]:
    """Copy config.yml and agents/*.yml; existing files are kept unless `force`."""
    if not repo.is_dir():
        raise SomasError(f"{repo}: not a folder; create the repository first")
    source = default_somas_dir()
    target = repo / names.SOMAS_DIR
    written = []
    files = [source / names.CONFIG_FILE, *sorted((source / names.AGENTS_DIR).glob("*.yml"))]
    for path in files:
        destination = target / path.relative_to(source)
        if destination.exists() and not force:
            continue
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        written.append(destination)
    (target / names.PROJECTS_DIR).mkdir(parents=True, exist_ok=True)
    return written


def register(sub: Subparsers) -> None:
    """`somas init`."""
    p = sub.add_parser("init", help="scaffold .somas/ (config and agents) into a repository")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.set_defaults(func=lambda a: run(a.repo, force=a.force))


def run(repo: Path, force: bool) -> int:
    """Scaffold and say what was written."""
    written = scaffold(repo, force)
    for path in written:
        print(f"wrote {path.relative_to(repo)}")
    if not written:
        print(f"{repo / names.SOMAS_DIR}: already scaffolded (use --force to overwrite)")
    return 0
