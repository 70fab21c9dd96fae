"""A file-backed issue tracker: the embedded default, and what tests use instead of GitHub."""

from __future__ import annotations

from pathlib import Path

from somas_action.core import names
from somas_action.core.domain import JsonObject
from somas_action.core.errors import CommandRefused, StateError
from somas_action.core.labels import ALERT
from somas_action.core.ports import Issue
from somas_action.state.jsonio import atomic_write_json, load_json_file
from somas_action.state.locks import folder_lock


class LocalTracker:
    """Issues as `.somas/tracker/issues/<n>.json`, pull requests in `pulls.json`.

    Every read-modify-write holds the tracker folder's lock, so projects run in parallel never
    lose each other's records.
    """

    def __init__(self, repo: Path) -> None:
        self.root = repo / names.SOMAS_DIR / names.TRACKER_DIR
        self.issues_dir = self.root / "issues"

    def _issue_path(self, number: int) -> Path:
        return self.issues_dir / f"{int(number)}.json"

    def _read(self, path: Path) -> JsonObject:
        data = load_json_file(path, "fix or delete the file")
        if not isinstance(data, dict):
            raise StateError(f"{path}: expected a JSON object; fix or delete the file")
        return data

    def create_issue(self, title: str, body: str, labels: list[str]) -> Issue:
        """Open a new local issue with the next free number."""
        self.issues_dir.mkdir(parents=True, exist_ok=True)
        with folder_lock(self.root):
            number = self._create(title, body, labels)
        return self.get_issue(number)

    def _create(self, title: str, body: str, labels: list[str]) -> int:
        numbers = [int(p.stem) for p in self.issues_dir.glob("*.json") if p.stem.isdigit()]
        number = max(numbers, default=0) + 1
        record = {
            "number": number,
            "title": title,
            "body": body,
            "state": "open",
            "labels": sorted(set(labels)),
            "comments": [],
        }
        atomic_write_json(self._issue_path(number), record)
        return number

    def get_issue(self, number: int) -> Issue:
        """The local issue `number`."""
        path = self._issue_path(number)
        if not path.exists():
            raise CommandRefused(
                f"{path}: local issue #{number} does not exist; create it with "
                f'`somas start --issue {number} --title "..."`'
            )
        record = self._read(path)
        return Issue(
            number=record["number"],
            title=record["title"],
            body=record["body"],
            labels=tuple(record["labels"]),
            url=str(path),
        )

    def record(self, number: int) -> JsonObject:
        """The raw stored issue (labels and comments included)."""
        return self._read(self._issue_path(number))

    def set_labels(self, number: int, add: set[str], remove: set[str]) -> None:
        """Add and remove labels in one write; no write when nothing changes."""
        path = self._issue_path(number)
        with folder_lock(self.root):
            record = self._read(path)
            labels = (set(record["labels"]) | add) - remove
            if labels != set(record["labels"]):
                record["labels"] = sorted(labels)
                atomic_write_json(path, record)

    def upsert_comment(self, number: int, marker: str, body: str) -> None:
        """Edit the comment whose body carries `marker`, or add it."""
        with folder_lock(self.root):
            self._upsert_comment(number, marker, body)

    def _upsert_comment(self, number: int, marker: str, body: str) -> None:
        path = self._issue_path(number)
        record = self._read(path)
        text = f"{body}\n\n<!-- {marker} -->"
        for comment in record["comments"]:
            if f"<!-- {marker} -->" in comment["body"]:
                if comment["body"] == text:
                    return
                comment["body"] = text
                break
        else:
            record["comments"].append({"id": len(record["comments"]) + 1, "body": text})
        atomic_write_json(path, record)

    def upsert_alert(self, title: str, body: str | None) -> str | None:
        """The one open local issue labelled `somas:alert`: created, updated, or closed."""
        self.issues_dir.mkdir(parents=True, exist_ok=True)
        with folder_lock(self.root):
            for path in sorted(self.issues_dir.glob("*.json")):
                record = self._read(path)
                if ALERT in record["labels"] and record["state"] == "open":
                    if body is None:
                        record["state"] = "closed"
                    else:
                        record.update(title=title, body=body)
                    atomic_write_json(path, record)
                    return None if body is None else str(path)
            if body is None:
                return None
            number = self._create(title, body, [ALERT])
        return self.get_issue(number).url

    def cancel_in_progress_runs(self) -> list[str]:
        """The local tracker runs nothing in the background: there is nothing to cancel."""
        return []

    def upsert_pull_request(self, head: str, base: str, title: str, body: str) -> str:
        """Record the pull request for `head` in `pulls.json` (one record per head)."""
        with folder_lock(self.root):
            return self._upsert_pull_request(head, base, title, body)

    def _upsert_pull_request(self, head: str, base: str, title: str, body: str) -> str:
        path = self.root / "pulls.json"
        pulls: list[JsonObject] = []
        if path.exists():
            pulls = load_json_file(path, "fix or delete the file")
        for pull in pulls:
            if pull["head"] == head:
                # A pull request closed when its project failed opens again with new work.
                pull.update(base=base, title=title, body=body, state="open")
                pull.pop("closed_reason", None)
                break
        else:
            pulls.append(
                {
                    "number": len(pulls) + 1,
                    "head": head,
                    "base": base,
                    "title": title,
                    "body": body,
                    "state": "open",
                }
            )
        atomic_write_json(path, pulls)
        return f"{path}#{head}"

    def close_pull_request(self, head: str, reason: str) -> str | None:
        """Mark the open pull request of `head` closed in `pulls.json`, with the reason."""
        with folder_lock(self.root):
            return self._close_pull_request(head, reason)

    def _close_pull_request(self, head: str, reason: str) -> str | None:
        path = self.root / "pulls.json"
        pulls: list[JsonObject] = []
        if path.exists():
            pulls = load_json_file(path, "fix or delete the file")
        for pull in pulls:
            if pull["head"] == head and pull["state"] == "open":
                pull.update(state="closed", closed_reason=reason)
                atomic_write_json(path, pulls)
                return f"{path}#{head}"
        return None
