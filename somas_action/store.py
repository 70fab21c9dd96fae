"""One project's folder: the log, its projection, dead letters, artifacts and backups."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from somas_action import events as ev
from somas_action import names
from somas_action.errors import StateError
from somas_action.eventlog import EventLog, gc_paused
from somas_action.jsonio import atomic_write_json, atomic_write_text, json_problem
from somas_action.projection import (
    State,
    apply_all,
    digest_matches,
    fold,
    render,
    strip_digest,
)

# Fields an operator may change by editing state.json (the runbook's manual restart).
EDITABLE_FIELDS = ("status", "current_stage")
EDITABLE_STAGE_FIELDS = ("status",)


def validate_project_id(project_id: str) -> str:
    """Refuse anything but `project-<n>`, so no path can escape `.somas/projects/`."""
    if not names.PROJECT_ID_RE.match(project_id):
        raise StateError(
            f"invalid project id {project_id!r}: expected project-<issue number>, e.g. project-7"
        )
    return project_id


def projects_dir(repo: Path) -> Path:
    """`.somas/projects` of a repository."""
    return repo / names.SOMAS_DIR / names.PROJECTS_DIR


class ProjectStore:
    """Reads and durably writes one project's files."""

    def __init__(self, repo: Path, project_id: str) -> None:
        self.project_id = validate_project_id(project_id)
        self.dir = projects_dir(repo) / project_id
        self.state_path = self.dir / names.STATE_FILE
        self.log = EventLog(self.dir / names.TRANSITIONS_FILE)
        self.dead_letters_path = self.dir / names.DEAD_LETTERS_FILE
        self.artifacts_dir = self.dir / names.ARTIFACTS_DIR

    def exists(self) -> bool:
        """Whether the project has a log."""
        return self.log.exists()

    # -- reading -----------------------------------------------------------------------------

    def read_state_file(self) -> State | None:
        """`state.json` as written (None if absent); a parse error is a one-line StateError."""
        try:
            text = self.state_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise StateError(
                f"{self.state_path}: not valid JSON ({json_problem(exc)}); "
                f"run `somas reconstruct {self.project_id}` to rebuild it from transitions.jsonl"
            ) from None
        if not isinstance(data, dict):
            raise StateError(
                f"{self.state_path}: expected a JSON object; "
                f"run `somas reconstruct {self.project_id}`"
            )
        return data

    def load(self) -> tuple[State, dict[str, Any] | None]:
        """The project's state and, if `state.json` was edited by hand, the edit to record.

        A `state.json` behind the log (a crash between append and rewrite) is re-projected.
        """
        if not self.exists():
            raise StateError(
                f"{self.dir}: project {self.project_id} not found "
                "(no transitions.jsonl); `somas status` lists projects"
            )
        written = self.read_state_file()
        tail = self.log.tail()
        last = (written or {}).get("last_event") or {}
        in_step = last.get("seq") == tail.seq and last.get("hash") == tail.hash
        if written is not None and in_step and digest_matches(written):
            return strip_digest(written), None
        with gc_paused():
            projected = fold(self.log.read())
        if written is None or not in_step:
            # Missing or behind the log: the log wins, silently (a crash, not an edit).
            atomic_write_text(self.state_path, render(projected))
            return projected, None
        return projected, diff_editable(written, projected)

    def read_events(self) -> list[dict[str, Any]]:
        """Every event, chain verified."""
        return self.log.read()

    def first_event(self) -> dict[str, Any]:
        """The `project_created` event (reads only the first line)."""
        with open(self.log.path, encoding="utf-8") as handle:
            return json.loads(handle.readline())  # type: ignore[no-any-return]

    def read_dead_letters(self) -> list[dict[str, Any]]:
        """`dead_letters.json` as a list (empty if absent)."""
        try:
            data = json.loads(self.dead_letters_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except ValueError as exc:
            raise StateError(
                f"{self.dead_letters_path}: not valid JSON ({json_problem(exc)}); restore "
                "dead_letters.json.backup or write [] to it"
            ) from None
        if not isinstance(data, list):
            raise StateError(f"{self.dead_letters_path}: expected a JSON array")
        return data

    # -- writing -----------------------------------------------------------------------------

    def commit(
        self, state: State | None, drafts: Sequence[dict[str, Any]]
    ) -> tuple[State, list[dict[str, Any]]]:
        """Append drafts to the log (fsync), then rewrite state.json and dead letters.

        Returns the new state and the events as written (with seq and hash).
        """
        written = self.log.append(drafts)
        new_state = apply_all(state, written)
        self.dir.mkdir(parents=True, exist_ok=True)
        letters = [
            e["data"]["dead_letter"] for e in written if e["event_type"] == ev.DEAD_LETTER_RECORDED
        ]
        if letters or not self.dead_letters_path.exists():
            existing = self.read_dead_letters()
            known = {entry["id"] for entry in existing}
            atomic_write_json(
                self.dead_letters_path, existing + [d for d in letters if d["id"] not in known]
            )
        atomic_write_text(self.state_path, render(new_state))
        return new_state, written

    def reconstruct_text(self) -> str:
        """The `state.json` text the log describes."""
        with gc_paused():
            return render(fold(self.log.read()))

    def backup_state(self, suffix: str = "") -> Path | None:
        """Copy state.json to `state.json.backup<suffix>` before a destructive operation."""
        if not self.state_path.exists():
            return None
        target = self.dir / f"{names.STATE_BACKUP_FILE}{suffix}"
        shutil.copy2(self.state_path, target)
        return target

    def write_artifact(self, name: str, content: str | dict[str, Any] | list[Any]) -> Path:
        """Write one artifact atomically; names are checked by the caller's schema."""
        path = self.artifacts_dir / name
        if path.parent != self.artifacts_dir:
            raise StateError(f"artifact name {name!r} must be a plain file name")
        if isinstance(content, str):
            atomic_write_text(path, content if content.endswith("\n") else content + "\n")
        else:
            atomic_write_json(path, content)
        return path


def diff_editable(written: State, projected: State) -> dict[str, Any]:
    """What a hand edit of state.json changed: editable fields to apply, others to report."""
    changes: dict[str, Any] = {}
    ignored: list[str] = []
    for key in set(written) | set(projected):
        if key in ("projection_sha256", "stages") or written.get(key) == projected.get(key):
            continue
        if key in EDITABLE_FIELDS:
            changes[key] = written.get(key)
        else:
            ignored.append(key)
    stage_changes: dict[str, dict[str, Any]] = {}
    written_stages = written.get("stages") if isinstance(written.get("stages"), dict) else {}
    for stage, record in projected.get("stages", {}).items():
        edited = (written_stages or {}).get(stage)
        if not isinstance(edited, dict):
            continue
        for field_name, value in edited.items():
            if record.get(field_name) == value:
                continue
            if field_name in EDITABLE_STAGE_FIELDS:
                stage_changes.setdefault(stage, {})[field_name] = value
            else:
                ignored.append(f"stages.{stage}.{field_name}")
    if stage_changes:
        changes["stages"] = stage_changes
    return {"changes": changes, "ignored": sorted(ignored)}
