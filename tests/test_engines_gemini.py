"""The real Gemini CLI, installed at its pinned version, against a fake Gemini API stream.

`make engines` (run by `make test`) installs it into `.cache/engines/`; without it these tests
skip and say so.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from somas_action.providers.engines.install import find_installed
from somas_action.providers.engines.spec import EngineSpec
from tests.engine_scenarios import GREET, make_project, run_once
from tests.fakes.gemini_stream import (
    FakeGeminiStream,
    FunctionCall,
    calls,
    daily_quota_exhausted,
    says,
)

ROOT = Path(__file__).parent.parent
ENGINES_DIR = ROOT / ".cache" / "engines"
VERSION = json.loads((Path(__file__).parent / "engine_pins.json").read_text())["gemini-cli"]
KEY = "gk-test-ENGINE-gemini-only-7e2c"
OLD, NEW = 'return "hi " + name', 'return "hello " + name'

pytestmark = pytest.mark.skipif(
    find_installed(ENGINES_DIR, "gemini-cli", VERSION) is None,
    reason=f"Gemini CLI {VERSION} is not installed in .cache/engines: run `make engines`",
)


def gemini(fake: FakeGeminiStream, max_turns: int = 8) -> EngineSpec:
    """Gemini CLI at its pin, pointed at the fake."""
    return EngineSpec(
        engine="gemini-cli",
        version=VERSION,
        model="gemini-2.5-pro",
        max_turns=max_turns,
        timeout_seconds=120,
        base_url=fake.url,
    )


def response_to(body: dict[str, object], name: str) -> str:
    """The response Gemini CLI sent back for its call of `name`."""
    for content in body["contents"]:  # type: ignore[attr-defined]
        for part in content["parts"]:
            if part.get("functionResponse", {}).get("name") == name:
                return json.dumps(part["functionResponse"]["response"])
    raise AssertionError(f"no functionResponse for {name}")


@pytest.mark.subprocess
def test_gemini_cli_reads_and_edits_a_file_through_the_fake_api(tmp_path: Path) -> None:
    repo = make_project(tmp_path / "repo")
    greet = str(tmp_path / "run" / "tree" / "greet.py")
    with FakeGeminiStream(KEY) as fake:
        fake.script(
            calls(FunctionCall("read_file", {"file_path": greet})),
            calls(
                FunctionCall(
                    "replace",
                    {
                        "file_path": greet,
                        "instruction": "say hello",
                        "old_string": OLD,
                        "new_string": NEW,
                    },
                )
            ),
            says("greet now says hello."),
        )
        outcome, files = run_once(repo, tmp_path / "run", gemini(fake), KEY, tools_dir=ENGINES_DIR)

    assert fake.refusals() == []
    assert (outcome.kind, outcome.exit_code) == ("success", 0), outcome.reason
    assert files == [("greet.py", GREET.replace(OLD, NEW).encode())]
    assert outcome.last_words.strip() == "greet now says hello."
    assert outcome.usage.input_tokens > 0 and outcome.session_id
    answered = fake.answered()
    assert len(answered) == 3
    assert "hi " in response_to(answered[1].body, "read_file")
    assert "Make greet say hello." in json.dumps(answered[0].body["contents"])
    assert {s.headers["x-goog-api-key"] for s in fake.seen} == {KEY}


@pytest.mark.subprocess
def test_gemini_cli_out_of_quota_is_a_quota_outcome(tmp_path: Path) -> None:
    repo = make_project(tmp_path / "repo")
    with FakeGeminiStream(KEY) as fake:
        fake.script(*[daily_quota_exhausted() for _ in range(12)])
        outcome, files = run_once(repo, tmp_path / "run", gemini(fake), KEY, tools_dir=ENGINES_DIR)

    assert (outcome.kind, outcome.parks) == ("quota", True), outcome.reason
    assert files == []
    assert len(fake.seen) <= 3  # a daily quota is not retried
