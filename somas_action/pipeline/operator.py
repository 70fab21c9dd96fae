"""The runbook's operator procedures with their effects: backups, moves, config edits."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from somas_action.core import controls, names
from somas_action.core.domain import DeadLetter, EventDraft, JsonObject, State
from somas_action.core.engine import Context
from somas_action.core.errors import CommandRefused, StateError
from somas_action.core.projection import digest_matches
from somas_action.pipeline.loading import retry_on_conflict
from somas_action.pipeline.runner import Runner
from somas_action.state.jsonio import atomic_write_json, atomic_write_text, load_json_file
from somas_action.state.logcheck import shape_problem
from somas_action.state.store import ProjectStore, projects_dir, unused_name

STOP_ALL_REASON = "stop-all (emergency stop)"


class Operator:
    """Operator commands on top of a Runner; every change is an event with an actor."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def _today(self) -> str:
        return self.runner.s.clock.now().strftime("%Y%m%d")

    def _key(self, verb: str, state: State) -> str:
        return f"{verb}:{state['last_event']['hash']}"

    def _apply(
        self,
        project_id: str,
        actor: str,
        verb: str,
        build: Callable[[State, Context, str | None], list[EventDraft]],
        delivery_id: str | None,
        backup: bool = False,
    ) -> State:
        """Load, skip a command already applied (a redelivered trigger), back up, record; if
        another writer records first, decide again on what it recorded."""

        def once() -> State:
            store, state = self.runner.load(project_id, actor)
            command_id = delivery_id or self._key(verb, state)
            if command_id in state["applied_commands"]:
                return state
            taken = store.backup_state() if backup else None
            ctx = self.runner.context(actor, command_id)
            drafts = build(state, ctx, taken.name if taken else None)
            return self.runner.commit(store, state, drafts)

        return retry_on_conflict(once)

    # -- lifecycle -----------------------------------------------------------------------------

    def pause(
        self,
        project_id: str,
        actor: str,
        reason: str = "paused by operator",
        delivery_id: str | None = None,
    ) -> State:
        """Stop a project from advancing."""
        return self._apply(
            project_id,
            actor,
            "pause",
            lambda st, ctx, _: controls.pause(st, reason, ctx),
            delivery_id,
        )

    def unpause(self, project_id: str, actor: str, delivery_id: str | None = None) -> State:
        """Let a paused project continue."""
        return self._apply(
            project_id,
            actor,
            "unpause",
            lambda st, ctx, _: controls.unpause(st, ctx),
            delivery_id,
        )

    def cancel(
        self,
        project_id: str,
        actor: str,
        reason: str = "cancelled by operator",
        delivery_id: str | None = None,
    ) -> State:
        """End a project for good (after a backup of state.json)."""
        return self._apply(
            project_id,
            actor,
            "cancel",
            lambda st, ctx, _: controls.cancel(st, reason, ctx),
            delivery_id,
            backup=True,
        )

    def restart(
        self,
        project_id: str,
        stage: str,
        actor: str,
        reason: str,
        delivery_id: str | None = None,
        force: bool = False,
    ) -> State:
        """Restart from a stage, after a backup of state.json (skipping a stage needs force)."""
        return self._apply(
            project_id,
            actor,
            f"restart-{stage}",
            lambda st, ctx, saved: controls.restart(st, stage, reason, saved, ctx, force=force),
            delivery_id,
            backup=True,
        )

    def resume(
        self, project_id: str, checkpoint: str | None, actor: str, delivery_id: str | None = None
    ) -> State:
        """Resume after the last successful (or a named) checkpoint, after a backup."""
        return self._apply(
            project_id,
            actor,
            "resume",
            lambda st, ctx, _: controls.resume(st, checkpoint, ctx),
            delivery_id,
            backup=True,
        )

    def reset(self, project_id: str, actor: str) -> tuple[Path, State]:
        """The full restart: archive the folder as `<id>.backup.YYYYMMDD`, start from the issue."""
        store, state = self.runner.load(project_id, actor)
        # Never overwrite an earlier archive of the same day.
        target = unused_name(
            projects_dir(self.runner.s.repo) / f"{project_id}.backup.{self._today()}"
        )
        ctx = self.runner.context(actor, self._key("reset", state))
        self.runner.commit(store, state, controls.archive(state, target.name, ctx))
        shutil.move(str(store.dir), str(target))
        fresh = self.runner.start(
            state["issue_number"], actor, delivery_id=f"reset:{state['last_event']['hash']}"
        )
        return target, fresh

    # -- backups -------------------------------------------------------------------------------

    def backup(self, project_id: str, actor: str) -> Path:
        """Take a dated backup of state.json (`state.json.backup.YYYYMMDD`)."""
        store, _ = self.runner.load(project_id, actor)
        path = store.backup_state(dated=self._today())
        if path is None:  # pragma: no cover - load() always leaves a state.json
            raise StateError(f"{store.state_path}: nothing to back up")
        return path

    def restore(
        self, project_id: str, name: str | None, actor: str, force: bool = False
    ) -> tuple[State, str]:
        """Restore a backup (the newest valid one unless named) as a `state_restored` event.

        A backup older than the log's head would move the project back over later work: it is
        refused unless `force`, pointing to `reconstruct`, which rebuilds state.json from the
        log (usually what a corrupt state.json needs).
        """
        store = self.runner.store(project_id)
        chosen, backup = _choose_backup(store, name)
        head_state = store.state_from_log()
        seq, head = backup["last_event"]["seq"], head_state["last_event"]["seq"]
        if seq < head and not force:
            raise CommandRefused(
                f"{chosen.name} was taken at event #{seq}; the log is at #{head}. Restoring it "
                f"would move {project_id} from {head_state['status']} at "
                f"{head_state['current_stage']} back to {backup['status']} at "
                f"{backup['current_stage']}. `somas reconstruct {project_id}` rebuilds "
                "state.json from the log (what a corrupt state.json needs); add --force to go "
                "back anyway (recorded in the log)"
            )
        # state.json may be the corrupt thing being replaced: keep a copy, start from the log.
        with store.locked():
            store.backup_state()
            atomic_write_text(store.state_path, store.reconstruct_text())
        store, state = self.runner.load(project_id, actor)
        ctx = self.runner.context(actor, self._key(f"restore-{chosen.name}", state))
        new_state = self.runner.commit(
            store, state, controls.restore(state, chosen.name, backup, ctx)
        )
        return new_state, _drift(backup, state)

    # -- dead letters --------------------------------------------------------------------------

    def dead_letters(self, project_id: str, actor: str) -> list[DeadLetter]:
        """The queue, after recording any hand purge."""
        store, _ = self.runner.load(project_id, actor)
        return store.read_dead_letters()

    def retry_dead_letter(
        self, project_id: str, letter_id: str, actor: str, force: bool = False
    ) -> State:
        """Re-run a dead letter's stage with its recorded inputs (moving back needs force)."""
        store, state = self.runner.load(project_id, actor)
        letters = {d["id"]: d for d in store.read_dead_letters()}
        if letter_id not in letters:
            raise CommandRefused(
                f"no dead letter {letter_id!r} in {store.dead_letters_path.name}; "
                f"queued: {', '.join(letters) or 'none'}"
            )
        store.backup_state()
        ctx = self.runner.context(actor, self._key(f"retry-{letter_id}", state))
        drafts = controls.retry_dead_letter(state, letters[letter_id], ctx, force=force)
        return self.runner.commit(store, state, drafts)

    def purge_dead_letters(self, project_id: str, actor: str) -> tuple[int, Path]:
        """Back the queue up to `dead_letters.json.backup`, then empty it (with an event)."""
        store, state = self.runner.load(project_id, actor)
        # Every purge keeps its own backup: a second purge never overwrites the first.
        backup = unused_name(store.dead_letters_path.with_name(f"{names.DEAD_LETTERS_FILE}.backup"))
        if store.dead_letters_path.exists():
            shutil.copy2(store.dead_letters_path, backup)
        else:
            atomic_write_json(backup, [])
        ids = list(state["dead_letter_ids"])
        ctx = self.runner.context(actor, self._key("purge", state))
        drafts = controls.purge_dead_letters(state, ids, backup.name, False, ctx)
        self.runner.commit(store, state, drafts)
        return len(ids), backup

    # -- incidents -----------------------------------------------------------------------------

    def incident(self, project_id: str, text: str, resolve: bool, actor: str) -> State:
        """Record an incident note or its resolution in the transitions log."""
        store, state = self.runner.load(project_id, actor)
        ctx = self.runner.context(actor, self._key("incident", state) + f":{len(text)}")
        return self.runner.commit(store, state, controls.incident(state, text, resolve, ctx))


def _choose_backup(store: ProjectStore, name: str | None) -> tuple[Path, JsonObject]:
    """The named backup, or the newest valid one; a backup that cannot be one is refused."""
    backups = store.backups()
    if not backups:
        raise CommandRefused(
            f"{store.dir}: no state.json.backup* files; `somas reconstruct {store.project_id}` "
            "rebuilds state.json from the log"
        )
    if name is not None:
        chosen = store.dir / name
        if chosen not in backups:
            valid = ", ".join(p.name for p in backups)
            raise CommandRefused(f"--from: no backup {name!r}; available: {valid}")
        backup, problem = _backup_problem(store, chosen)
        if backup is None:
            raise CommandRefused(f"{chosen.name}: {problem}; choose another backup")
        return chosen, backup
    problems = []
    for path in reversed(backups):
        backup, problem = _backup_problem(store, path)
        if backup is not None:
            return path, backup
        problems.append(f"{path.name}: {problem}")
    raise CommandRefused(
        f"no valid backup ({'; '.join(problems)}); `somas reconstruct {store.project_id}` "
        "rebuilds state.json from the log"
    )


def _backup_problem(store: ProjectStore, path: Path) -> tuple[JsonObject | None, str]:
    """(the backup, "") if it is an unedited state.json of this project, else (None, why)."""
    try:
        data = load_json_file(path, "")
    except (StateError, FileNotFoundError) as exc:
        return None, str(exc).split(": ", 1)[-1].rstrip("; ")
    if not isinstance(data, dict) or shape_problem(data):
        return None, "not a state.json"
    if data.get("project_id") != store.project_id:
        return None, f"belongs to {data.get('project_id')!r}"
    if not digest_matches(data):
        return None, "edited after SOMAS wrote it (its digest does not match)"
    return data, ""


def _drift(backup: Mapping[str, Any], log_state: State) -> str:
    """Plain words on how a backup differs from what the log says now."""
    seq = (backup.get("last_event") or {}).get("seq")
    now = log_state["last_event"]["seq"]
    if seq is None:
        return "the backup has no last_event; it was restored as given"
    if seq == now:
        return f"the backup matches the log's latest event (#{now})"
    return (
        f"the backup was taken at event #{seq}; the log has {now - seq} later event(s), which "
        f"stay in transitions.jsonl for audit. Status goes from {log_state['status']!r} at "
        f"{log_state['current_stage']} to {backup['status']!r} at {backup['current_stage']}; "
        f"`somas reconstruct {log_state['project_id']} --check` shows the log's own view"
    )
