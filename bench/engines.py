"""Figures for engine providers: install size and time, start-up cost, requests per stage.

Run from the repository root after `make engines`:

    .venv/bin/python bench/engines.py                 # the installed pinned engines
    .venv/bin/python bench/engines.py --fresh-install # also time a fresh install (registry)

Start-up and stage figures drive the real Claude Code against the strict fake Anthropic API
(tests/fakes/anthropic_stream.py) and the real Codex against the fake Responses API
(tests/fakes/responses_stream.py), on 127.0.0.1. The last line is `BENCH-JSON {...}`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from somas_action.providers.engines.install import find_installed, install_engine  # noqa: E402
from somas_action.providers.engines.spec import EngineSpec  # noqa: E402
from tests.engine_scenarios import make_project, run_once  # noqa: E402
from tests.fakes import gemini_stream, responses_stream  # noqa: E402
from tests.fakes.anthropic_stream import FakeAnthropicStream, ToolUse, calls, says  # noqa: E402
from tests.fakes.scripted_server import ScriptedServer  # noqa: E402

ENGINES_DIR = ROOT / ".cache" / "engines"
PINS = json.loads((ROOT / "tests" / "engine_pins.json").read_text())
KEY = "sk-ant-bench-key"
REPEATS = 3


def version_seconds(executable: Path) -> float:
    """Median wall time of `<engine> --version` (process start, no model call)."""
    times = []
    for _ in range(REPEATS):
        started = time.monotonic()
        subprocess.run([str(executable), "--version"], capture_output=True, check=True)
        times.append(time.monotonic() - started)
    return round(statistics.median(times), 3)


# The fake model API and the model each engine is driven with (a full Claude model name: see
# docs/engines.md on the alias).
FAKES: dict[str, tuple[Callable[[str], ScriptedServer[Any]], str]] = {
    "claude-code": (FakeAnthropicStream, "claude-sonnet-4-5"),
    "codex": (responses_stream.FakeResponsesStream, "gpt-5-codex"),
    "gemini-cli": (gemini_stream.FakeGeminiStream, "gemini-2.5-pro"),
}


def stage(engine: str, replies: list[Any]) -> dict[str, Any]:
    """One engine run through its fake API: wall time, requests, bytes sent, tokens reported.
    A reply may be a function of the edited file's path (the engine's tools want it whole)."""
    make_fake, model = FAKES[engine]
    with tempfile.TemporaryDirectory(prefix="somas-bench-engine-") as tmp:
        repo = make_project(Path(tmp) / "repo")
        greet = str(Path(tmp) / "run" / "tree" / "greet.py")
        with make_fake(KEY) as fake:
            fake.script(*[r(greet) if callable(r) else r for r in replies])
            spec = EngineSpec(engine, model, PINS[engine], 10, 120, base_url=fake.url)
            started = time.monotonic()
            outcome, _ = run_once(repo, Path(tmp) / "run", spec, KEY, tools_dir=ENGINES_DIR)
            seconds = time.monotonic() - started
        sent = [len(json.dumps(s.body)) for s in fake.seen]
        return {
            "outcome": outcome.kind,
            "seconds": round(seconds, 2),
            "requests": len(fake.seen),
            "request_bytes_total": sum(sent),
            "request_bytes_first": sent[0] if sent else 0,
            "tokens_in_reported": outcome.usage.input_tokens,
            "turns": outcome.usage.turns,
        }


def main() -> int:
    """Print the figures for each installed pinned engine."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--fresh-install", action="store_true")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    for engine, version in PINS.items():
        if args.fresh_install:
            with tempfile.TemporaryDirectory(prefix="somas-bench-install-") as tmp:
                fresh = install_engine(engine, version, Path(tmp))
                figures[f"{engine}.install_seconds_fresh"] = fresh.install_seconds
        installed = find_installed(ENGINES_DIR, engine, version)
        if installed is None:
            print(f"{engine} {version}: not installed (run `make engines`)")
            continue
        figures[f"{engine}.install_mib"] = round(installed.size_bytes / 2**20)
        figures[f"{engine}.version_seconds"] = version_seconds(installed.executable)
    edit = {"old_string": 'return "hi " + name', "new_string": 'return "hello " + name'}
    shell, call = responses_stream.FunctionCall, gemini_stream.FunctionCall
    scripts: dict[str, tuple[list[Any], list[Any]]] = {
        "claude-code": (
            [says("hello")],
            [
                lambda p: calls(ToolUse("Read", {"file_path": p})),
                lambda p: calls(ToolUse("Edit", {"file_path": p, **edit})),
                says("done"),
            ],
        ),
        "codex": (
            [responses_stream.says("hello")],
            [
                responses_stream.calls(shell("exec_command", {"cmd": "cat greet.py"})),
                responses_stream.calls(
                    shell("exec_command", {"cmd": "sed -i 's/hi /hello /' greet.py"})
                ),
                responses_stream.says("done"),
            ],
        ),
        "gemini-cli": (
            [gemini_stream.says("hello")],
            [
                lambda p: gemini_stream.calls(call("read_file", {"file_path": p})),
                lambda p: gemini_stream.calls(
                    call("replace", {"file_path": p, "instruction": "hello", **edit})
                ),
                gemini_stream.says("done"),
            ],
        ),
    }
    for engine, (hello, read_edit) in scripts.items():
        if engine in PINS and find_installed(ENGINES_DIR, engine, PINS[engine]):
            figures[f"{engine}.hello"] = stage(engine, hello)
            figures[f"{engine}.read_edit_stage"] = stage(engine, read_edit)
    for name, value in figures.items():
        print(f"{name:40} {value}")
    print("BENCH-JSON " + json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
