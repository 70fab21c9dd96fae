#!/usr/bin/env python3
"""A fake coding-agent CLI for the engine runner's tests (placed on PATH as `fake-engine`).

It speaks the `command` engine contract: the prompt on stdin, stream JSON on stdout in Claude
Code's shape, a final `result` line. Told by its arguments what to do:

  --edit PATH=TEXT   write TEXT (and a newline) to PATH; repeatable
  --delete PATH      delete PATH; repeatable
  --mode MODE        success | hang | max-turns | quota | rate-limit | crash | silent
  --turns N          assistant turns to report before the end (default 2)
  --env-dump FILE    write the environment it saw to FILE as JSON
  --child-pid FILE   start a child process in its group and write the child's pid to FILE
  --echo-key NAME    print the value of variable NAME on stderr (as a leaky engine would)
  --plant-fsmonitor FILE  try to make the checkout's git config run `touch FILE` on SOMAS's
                     next git command (an fsmonitor), saying on stderr whether it could
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

SESSION = "fake-session-0001"


def emit(event: dict[str, object]) -> None:
    print(json.dumps(event), flush=True)


def result(subtype: str, text: str, turns: int, **extra: object) -> None:
    emit(
        {
            "type": "result",
            "subtype": subtype,
            "is_error": subtype != "success",
            "num_turns": turns,
            "result": text,
            "session_id": SESSION,
            "total_cost_usd": 0.0125,
            "usage": {"input_tokens": 1200 * turns, "output_tokens": 80 * turns},
            **extra,
        }
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--edit", action="append", default=[])
    parser.add_argument("--delete", action="append", default=[])
    parser.add_argument("--mode", default="success")
    parser.add_argument("--turns", type=int, default=2)
    parser.add_argument("--env-dump")
    parser.add_argument("--child-pid")
    parser.add_argument("--echo-key")
    parser.add_argument("--plant-fsmonitor")
    args = parser.parse_args()
    prompt = sys.stdin.read()
    if args.env_dump:
        Path(args.env_dump).write_text(json.dumps(dict(os.environ)))
    if args.plant_fsmonitor:
        plant(args.plant_fsmonitor)
    if args.echo_key:
        print(f"debug: using key {os.environ.get(args.echo_key, '')}", file=sys.stderr)
    emit({"type": "system", "subtype": "init", "session_id": SESSION, "prompt_chars": len(prompt)})
    for spec in args.edit:
        path, _, text = spec.partition("=")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
    for path in args.delete:
        Path(path).unlink()
    if args.child_pid:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        Path(args.child_pid).write_text(str(child.pid))
    for turn in range(1, args.turns + 1):
        text = f"turn {turn}: edited {len(args.edit)} file(s)"
        emit(
            {
                "type": "assistant",
                "session_id": SESSION,
                "message": {"content": [{"type": "text", "text": text}]},
            }
        )
    return finish(args.mode, args.turns)


def plant(marker: str) -> None:
    """Append an fsmonitor command to the git config the checkout points at."""
    dot_git = Path(".git")
    git_dir = Path(dot_git.read_text().split(":", 1)[1].strip()) if dot_git.is_file() else dot_git
    try:
        with (git_dir / "config").open("a") as config:
            config.write(f'[core]\n\tfsmonitor = "touch {marker}"\n')
        print("plant: the git config took the fsmonitor", file=sys.stderr)
    except OSError as error:
        print(f"plant refused: {error}", file=sys.stderr)


def finish(mode: str, turns: int) -> int:
    if mode == "hang":
        time.sleep(3600)
    if mode == "crash":
        print("Traceback (most recent call last):\nRuntimeError: engine blew up", file=sys.stderr)
        return 3
    if mode == "silent":
        return 0
    if mode == "max-turns":
        result("error_max_turns", "", turns)
        return 1
    if mode == "quota":
        result(
            "error_during_execution",
            "Your credit balance is too low to access the API",
            turns,
            api_error_status=400,
        )
        return 1
    if mode == "rate-limit":
        result("error_during_execution", "Number of requests exceeded", turns, api_error_status=429)
        return 1
    result("success", "Changed the greeting as asked.", turns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
