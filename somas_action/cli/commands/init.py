"""`somas init`: scaffold the default `.somas/` into a repository."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from somas_action.cli.commands import Subparsers
from somas_action.config.resources import consumer_workflow_template, default_somas_dir
from somas_action.core import names
from somas_action.core.errors import SomasError


def scaffold(repo: Path, force: bool = False, workflow: bool = False) -> list[Path]:
    """Copy config.yml and agents/*.yml (and the consumer workflow); keep existing files."""
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
    consumer = repo / ".github" / "workflows" / "somas.yml"
    if workflow and (force or not consumer.exists()):
        consumer.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(consumer_workflow_template(), consumer)
        written.append(consumer)
    return written


def register(sub: Subparsers) -> None:
    """`somas init`."""
    p = sub.add_parser("init", help="scaffold .somas/ (config and agents) into a repository")
    p.add_argument("--force", action="store_true", help="overwrite existing files")
    p.add_argument(
        "--no-workflow", action="store_true", help="do not write .github/workflows/somas.yml"
    )
    p.add_argument("--json", action="store_true", help="print the written files as JSON")
    p.set_defaults(
        func=lambda a: run(a.repo, force=a.force, workflow=not a.no_workflow, as_json=a.json)
    )


def run(repo: Path, force: bool, workflow: bool = True, as_json: bool = False) -> int:
    """Scaffold and say what was written."""
    written = scaffold(repo, force, workflow)
    if as_json:
        print(json.dumps({"written": [str(p.relative_to(repo)) for p in written]}, indent=2))
        return 0
    for path in written:
        print(f"wrote {path.relative_to(repo)}")
    if not written:
        print(f"{repo / names.SOMAS_DIR}: already scaffolded (use --force to overwrite)")
    return 0
