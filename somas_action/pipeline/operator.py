"""The runbook's operator procedures with their effects: backups, moves, config edits."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from somas_action.core import controls, names
from somas_action.core.domain import DeadLetter, EventDraft, State
from somas_action.core.engine import Context
from somas_action.core.errors import CommandRefused, StateError
from somas_action.pipeline.runner import Runner
from somas_action.state.jsonio import atomic_write_json, atomic_write_text, json_problem
from somas_action.state.store import projects_dir, unused_name

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
        """Load, skip a command already applied (a redelivered trigger), back up, record."""
        store, state = self.runner.load(project_id, actor)
        command_id = delivery_id or self._key(verb, state)
        if command_id in state["applied_commands"]:
            return state
        taken = store.backup_state() if backup else None
        ctx = self.runner.context(actor, command_id)
        return self.runner.commit(store, state, build(state, ctx, taken.name if taken else None))

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
    ) -> State:
        """Restart from a stage, after a backup of state.json."""
        return self._apply(
            project_id,
            actor,
            f"restart-{stage}",
            lambda st, ctx, saved: controls.restart(st, stage, reason, saved, ctx),
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

    def restore(self, project_id: str, name: str | None, actor: str) -> tuple[State, str]:
        """Restore a backup (newest unless named) as a `state_restored` event; explains drift."""
        store = self.runner.store(project_id)
        backups = store.backups()
        if not backups:
            raise CommandRefused(
                f"{store.dir}: no state.json.backup* files; `somas reconstruct {project_id}` "
                "rebuilds state.json from the log"
            )
        chosen = backups[-1] if name is None else store.dir / name
        if chosen not in backups:
            valid = ", ".join(p.name for p in backups)
            raise CommandRefused(f"--from: no backup {name!r}; available: {valid}")
        try:
            backup = json.loads(chosen.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise StateError(f"{chosen}: not valid JSON ({json_problem(exc)})") from None
        # state.json may be the corrupt thing being replaced: keep a copy, start from the log.
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

    def retry_dead_letter(self, project_id: str, letter_id: str, actor: str) -> State:
        """Re-run a dead letter's stage with its recorded inputs, then advance."""
        store, state = self.runner.load(project_id, actor)
        letters = {d["id"]: d for d in store.read_dead_letters()}
        if letter_id not in letters:
            raise CommandRefused(
                f"no dead letter {letter_id!r} in {store.dead_letters_path.name}; "
                f"queued: {', '.join(letters) or 'none'}"
            )
        store.backup_state()
        ctx = self.runner.context(actor, self._key(f"retry-{letter_id}", state))
        drafts = controls.retry_dead_letter(state, letters[letter_id], ctx)
        return self.runner.commit(store, state, drafts)

    def purge_dead_letters(self, project_id: str, actor: str) -> tuple[int, Path]:
        """Back the queue up to `dead_letters.json.backup`, then empty it (with an event)."""
        store, state = self.runner.load(project_id, actor)
        backup = store.dead_letters_path.with_name(f"{names.DEAD_LETTERS_FILE}.backup")
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
