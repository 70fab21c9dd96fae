"""Event comments on the issue, as `monitoring.notifications.notify_on` asks.

Each comment carries a hidden marker with the event id (`somas:event:<id>`), and the tracker
looks the marker up before posting, so a retried run or a retried POST never posts twice. Text
that came from outside (agent errors, test output, reasons) goes through `core.untrusted`: it
can neither mention people, link anywhere, show runner paths nor smuggle a marker.
"""

from __future__ import annotations

from somas_action.core import untrusted
from somas_action.core.domain import Event, State
from somas_action.core.events import EventType
from somas_action.core.ports import Tracker
from somas_action.core.settings import NotificationSettings

# notify_on setting -> the event that reports it.
NOTIFIED_EVENTS = {
    "stage_completed": EventType.STAGE_COMPLETED,
    "human_gate_opened": EventType.HUMAN_GATE_OPENED,
    "error_occurred": EventType.STAGE_FAILED,
    "pipeline_completed": EventType.PROJECT_COMPLETED,
}


def event_marker(event_id: str) -> str:
    """The marker of the comment that reports one event."""
    return f"somas:event:{event_id}"


class Notifier:
    """Posts one comment per notified event of a committed batch."""

    def __init__(
        self, tracker: Tracker, settings: NotificationSettings, run_url: str | None = None
    ) -> None:
        self.tracker = tracker
        self.enabled = settings.enabled
        self.wanted = {NOTIFIED_EVENTS[name] for name in settings.notify_on}
        self.run_url = run_url

    def post(self, state: State, written: list[Event]) -> int:
        """Comment on each notified event in `written`; returns how many were considered."""
        if not self.enabled:
            return 0
        count = 0
        for event in written:
            if event["event_type"] not in self.wanted:
                continue
            body = self.body(state, event, written)
            self.tracker.upsert_comment(state["issue_number"], event_marker(event["id"]), body)
            count += 1
        return count

    def body(self, state: State, event: Event, batch: list[Event]) -> str:
        """The comment text for one event."""
        kind, stage, pid = event["event_type"], event["stage"], state["project_id"]
        if kind == EventType.STAGE_COMPLETED:
            following = event["to_stage"] if event["to_stage"] != stage else None
            then = f"; next: **{following}**" if following else ""
            return f"✅ Stage **{stage}** of `{pid}` completed (attempt {event['attempt']}){then}."
        if kind == EventType.HUMAN_GATE_OPENED:
            return (
                f"✋ Stage **{stage}** of `{pid}` waits for a human decision.\n\n"
                "Reply `/somas approve` to continue or `/somas reject <reason>` to send it back "
                "(write access to the repository required)."
            )
        if kind == EventType.STAGE_FAILED:
            error = event["data"]["error"]
            letters = [
                e["data"]["dead_letter"]["id"]
                for e in batch
                if e["event_type"] == EventType.DEAD_LETTER_RECORDED and e["stage"] == stage
            ]
            lines = [
                f"❌ Stage **{stage}** of `{pid}` failed after {event['data']['attempts']} "
                f"attempt(s): {untrusted.code_span(str(error.get('kind', 'error')), 40)}",
                "",
                untrusted.code_block(str(error.get("message", ""))),
            ]
            if letters:
                lines.append(f"\nDead letter: `{letters[0]}` (in `dead_letters.json`).")
            if self.run_url:
                lines.append(f"Run: {self.run_url}")
            lines.append(f"\nNext: fix the cause, then `/somas restart {stage}` or `/somas retry`.")
            return "\n".join(lines)
        if kind == EventType.PROJECT_COMPLETED:
            return f"🎉 `{pid}` completed every stage of the pipeline."
        return f"`{pid}`: {kind.replace('_', ' ')}"
