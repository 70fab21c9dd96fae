"""Where a running pipeline looks up: between steps, when a reply arrives, during waits.

`SafePoints` is what `Runner.advance` asks at each safe point (see `pipeline.watch` for the
check itself). It reloads the project when someone else recorded something, says whether that
means stop (a pause, a cancel, stop-all's pause, an approval to wait for…), records an attempt
the stop left open as abandoned (not counted; a reply that had arrived is kept), and, when a
run starts, records an attempt a dead run left open as abandoned (counted).
"""

from __future__ import annotations

from collections.abc import Callable

from somas_action.core import engine
from somas_action.core.clock import Clock
from somas_action.core.domain import JsonObject, Replay, State
from somas_action.core.engine import Stop
from somas_action.core.settings import Config, StageConfig
from somas_action.pipeline.recorder import Recorder
from somas_action.pipeline.watch import RunStopped, Watch, WatchedClock, watch_moved
from somas_action.state.store import ProjectStore, tail_of

DIED = (
    "the run working on this attempt stopped before recording its outcome (killed or lost); "
    "it counts as a failed attempt"
)


class SafePoints:
    """The run-time controls of one runner (see module)."""

    def __init__(
        self,
        recorder: Recorder,
        config: Config,
        clock: Clock,
        *,
        reload: Callable[[str, str], State],
        replay_for: Callable[[ProjectStore, State, StageConfig], Replay],
    ) -> None:
        self.recorder = recorder
        self.config = config
        self.clock = clock
        self.reload = reload
        self.replay_for = replay_for

    def watch(self, store: ProjectStore, state: State, actor: str) -> None:
        """Start watching the project's log from where `state` was read."""
        tail = tail_of(state)
        watch = Watch(store, tail.offset, tail.hash, lambda: self._on_moved(store))
        self.recorder.watch = watch
        if isinstance(self.clock, WatchedClock):
            self.clock.watch = watch

    def unwatch(self) -> None:
        """Stop watching (the run ends)."""
        self.recorder.watch = None
        if isinstance(self.clock, WatchedClock):
            self.clock.watch = None

    def _on_moved(self, store: ProjectStore) -> None:
        """The log moved under a running step: stop if what was recorded says so."""
        state = store.read().state
        reason = self.stop_reason(state)
        if reason:
            raise RunStopped(reason)
        if self.recorder.watch is not None:
            tail = tail_of(state)
            self.recorder.watch.follow(store, tail.offset, tail.hash)

    def stop_reason(self, state: State) -> str | None:
        """Why a running pipeline must stop now (paused, cancelled, waiting, disabled…)."""
        step = engine.next_step(state, self.config)
        return step.reason if isinstance(step, Stop) else None

    def reply_arrived(self, output: JsonObject) -> None:
        """A safe point before any effect (files, commits, tests): stop here if told to."""
        watch = self.recorder.watch
        if watch is None:
            return
        try:
            watch.check()
        except RunStopped as stopped:
            stopped.output = output
            raise

    def between_steps(self, store: ProjectStore, state: State, actor: str) -> State:
        """If someone else wrote to the log, continue from what it says now."""
        watch = self.recorder.watch
        if watch is None or not watch_moved(watch):
            return state
        state = self.reload(state["project_id"], actor)
        tail = tail_of(state)
        watch.follow(store, tail.offset, tail.hash)
        return self.abandon_open(store, state, actor, "stopped at a safe point")

    def close_abandoned(self, store: ProjectStore, state: State, actor: str) -> State:
        """An attempt a previous run started and never finished: it counts, so a stage whose
        attempts keep killing their run still stops at max_retries (with a dead letter)."""
        opened = engine.open_attempt(state)
        if opened is None:
            return state
        stage = self.config.stage(opened[0])
        ctx = self.recorder.step_context(actor, state)
        replay = self.replay_for(store, state, stage)
        drafts = engine.abandon_attempt(state, stage, DIED, ctx, counted=True, replay=replay)
        return self.recorder.commit(store, state, drafts) if drafts else state

    def abandon_open(
        self,
        store: ProjectStore,
        state: State,
        actor: str,
        why: str,
        output: JsonObject | None = None,
    ) -> State:
        """A control stopped the run mid-attempt: the attempt does not count; a reply that had
        arrived is kept as an artifact and named in the event (the paid-for work is not lost)."""
        opened = engine.open_attempt(state)
        reason = self.stop_reason(state)
        if opened is None or reason is None:
            return state
        stage = self.config.stage(opened[0])
        digest = None
        if output is not None:
            store.write_artifact(f"{stage.name}.abandoned-reply.json", output)
            digest = engine.output_digest(output)
        ctx = self.recorder.step_context(actor, state)
        drafts = engine.abandon_attempt(
            state, stage, f"{why}: {reason}", ctx, counted=False, output_digest=digest
        )
        return self.recorder.commit(store, state, drafts) if drafts else state
