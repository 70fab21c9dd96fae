"""GitHub requests of one full pipeline on the fake GitHub: label -> gate -> approve -> done.

Run from the repository root (needs `npm ci` for the fake's OpenAPI description):

    .venv/bin/python bench/github_requests.py

It drives `somas handle-event` in-process, exactly as `tests/test_github_scenario.py` does: a
maintainer labels issue 7 `somas:project`, the pipeline runs to the review gate, the maintainer
comments `/somas approve`, the pipeline completes. Every request the fake GitHub receives is
counted. Where the workflows run a first, read-only authorization job (`somas authorize-event`)
before the queued job, its requests are counted separately, as they are a second process on
GitHub. The last line is `REQUESTS-JSON {...}` for notes.
"""

from __future__ import annotations

import json
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from somas_action.core.clock import FakeClock  # noqa: E402
from somas_action.core.labels import label_specs  # noqa: E402
from tests import github_env  # noqa: E402
from tests.fakes import payloads  # noqa: E402
from tests.fakes.github_server import FakeGitHub  # noqa: E402

ISSUE = 7
STAGES = ("intake", "specification", "architecture", "implementation", "validation", "review")
STAGES += ("release",)


def _authorize(repo: Path, fake: FakeGitHub, event: str, payload: dict[str, Any]) -> int | None:
    """Requests of the first job (`somas authorize-event`); None where it does not exist."""
    try:
        from somas_action.cli.commands.github import authorize_event
    except ImportError:
        return None
    before = len(fake.log)
    path = repo.parent / f"authorize-{event}.json"
    path.write_text(json.dumps(payload))
    authorize_event(repo, github_env.actions_env(fake, event, path, "1"))
    return len(fake.log) - before


def run(root: Path) -> dict[str, Any]:
    """One full pipeline; the requests it cost."""
    fake = FakeGitHub().start()
    try:
        clock = FakeClock()
        repo = github_env.repo_with_origin(root)
        fake.add_labels(label_specs(STAGES))  # `somas setup-labels`, as docs/install.md says
        fake.add_issue(ISSUE, "Add a slugify helper", "Page URLs need slugs.", ("somas:project",))
        fake.permissions.update(octocat="admin", alice="write")
        labeled = payloads.issue_labeled(fake.repository, ISSUE)
        first = _authorize(repo, fake, "issues", labeled)
        mark = len(fake.log)
        assert github_env.deliver(repo, fake, clock, "issues", labeled) == 0
        to_gate = len(fake.log) - mark
        comment_id = fake.add_comment(ISSUE, "/somas approve", login="alice")
        approve = payloads.comment_created(
            fake.repository,
            ISSUE,
            "/somas approve",
            comment_id=comment_id,
            login="alice",
            labels=tuple(fake.issues[ISSUE]["labels"]),  # as GitHub's payload shows them
        )
        second = _authorize(repo, fake, "issue_comment", approve)
        mark = len(fake.log)
        assert github_env.deliver(repo, fake, clock, "issue_comment", approve) == 0
        to_done = len(fake.log) - mark
        assert "somas:completed" in fake.issues[ISSUE]["labels"], fake.issues[ISSUE]["labels"]
        assert not fake.violations, fake.violations[:3]
        kinds = Counter(f"{call.method} {_shape(call.path)}" for call in fake.log)
        authorize = None if first is None or second is None else first + second
        return {
            "label_to_gate": to_gate,
            "approve_to_done": to_done,
            "handle_event_total": to_gate + to_done,
            "authorize_jobs": authorize,
            "all_jobs": to_gate + to_done + (authorize or 0),
            **_writes(fake.log, len(github_env.state_log(repo, f"project-{ISSUE}"))),
            "by_kind": dict(sorted(kinds.items())),
        }
    finally:
        fake.stop()


def _writes(log: list[Any], batches: int) -> dict[str, Any]:
    """The write figures of issue 14: total, label requests, edits that changed nothing."""
    writes = [c for c in log if c.is_write]
    labels = [c for c in writes if "/labels" in c.path or c.path == "/graphql"]
    edits = [c for c in writes if c.method == "PATCH" and "/comments/" in c.path]
    last: dict[str, Any] = {}
    unchanged = 0
    for edit in edits:  # an edit that sends the text the comment already has changes nothing
        unchanged += last.get(edit.path) == edit.body.get("body")
        last[edit.path] = edit.body.get("body")
    return {
        "writes": len(writes),
        "label_requests": len(labels),
        "state_batches": batches,
        "status_edits": len(edits),
        "unchanged_edits": unchanged,
    }


def _shape(path: str) -> str:
    """A request path with numbers and logins folded, so the same request counts as one kind."""
    parts = path.split("?")[0].split("/")
    if len(parts) > 2 and parts[1] == "collaborators":
        parts[2] = "{user}"
    if len(parts) > 4 and parts[3] == "labels":
        parts[4] = "{label}"
    return "/".join("{n}" if part.isdigit() else part for part in parts)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="somas-requests-") as tmp:
        result = run(Path(tmp))
    print("GitHub requests of one pipeline (label -> gate -> approve -> completed):")
    for key in ("label_to_gate", "approve_to_done", "handle_event_total", "authorize_jobs"):
        print(f"  {key:<22} {result[key] if result[key] is not None else '-':>5}")
    print(f"  {'all jobs':<22} {result['all_jobs']:>5}")
    print(
        f"  writes {result['writes']} (goal <= 20; 40 before the outbox), label requests "
        f"{result['label_requests']} over {result['state_batches']} state batches, status "
        f"edits {result['status_edits']}, unchanged edits {result['unchanged_edits']}"
    )
    for kind, count in result["by_kind"].items():
        print(f"    {count:>4}  {kind}")
    print("REQUESTS-JSON " + json.dumps(result, sort_keys=True, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
