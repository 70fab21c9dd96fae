"""Run one engine, non-interactively, in a scratch checkout, and say how it ended.

The engine's environment is built from nothing: a PATH of system folders and its own, a
private home and temp folder, its model key (and only that key), its endpoint, and what its
launch needs. Output goes to files in the run folder, so a killed run keeps its transcript.
The key and the MCP token are blanked from those files before anyone reads them.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from somas_action.core.error_kinds import QUOTA, RATE_LIMITED, TIMEOUT
from somas_action.core.errors import ConfigError
from somas_action.core.events import EventType
from somas_action.core.ports import Observation
from somas_action.providers.engines.catalog import (
    ENGINES,
    Launch,
    LaunchContext,
    McpEndpoint,
    key_env_for,
)
from somas_action.providers.engines.install import install_engine
from somas_action.providers.engines.outcome import (
    MAX_TURNS,
    EngineUsage,
    classify,
    read_transcript,
)
from somas_action.providers.engines.process import Sandbox, run_in_process_group
from somas_action.providers.engines.spec import EngineSpec
from somas_action.providers.engines.worktree import EngineDiff, Scratch, capture_diff

SYSTEM_PATH = ("/usr/local/bin", "/usr/bin", "/bin")
STDERR_TAIL_CHARS = 4000
REDACTED = "[redacted]"
# Limits stop the engine but keep its work: commit the diff so far and park the project.
PARKING_KINDS = (TIMEOUT, MAX_TURNS, QUOTA, RATE_LIMITED)


@dataclass(frozen=True)
class EngineRun:
    """One run: the engine, its resolved executable, the prompt, its key, its run folder."""

    spec: EngineSpec
    executable: str
    prompt: str
    model_key: str
    run_dir: Path
    mcp: McpEndpoint | None = None


@dataclass(frozen=True)
class EngineOutcome:
    """How the run ended (`kind` from outcome.OUTCOME_KINDS) and the work it left."""

    kind: str
    reason: str
    exit_code: int | None
    diff: EngineDiff
    transcript: Path
    stderr_tail: str
    usage: EngineUsage
    session_id: str
    last_words: str

    @property
    def parks(self) -> bool:
        """True when a limit stopped the engine: keep its work, park, continue next run."""
        return self.kind in PARKING_KINDS


def resolve_executable(spec: EngineSpec, tools_dir: Path) -> str:
    """The engine's executable: installed at its pinned version, or the `command` on PATH."""
    if spec.engine != "command":
        # Absolute: the engine runs in the scratch checkout, not where SOMAS started.
        return str(install_engine(spec.engine, spec.version, tools_dir).executable.absolute())
    found = shutil.which(spec.command)
    if found is None:
        raise ConfigError(
            f"engine.command: {spec.command!r} is not an executable file or on PATH; "
            "give its path or install it"
        )
    return str(Path(found).resolve())


def engine_environment(spec: EngineSpec, launch: Launch, run: EngineRun) -> dict[str, str]:
    """Exactly what the engine may see: no inherited variable, one model key."""
    folders = [str(Path(run.executable).parent)]
    node = shutil.which("node")
    if ENGINES[spec.engine].registry == "npm" and node:
        folders.append(str(Path(node).resolve().parent))
    env = {
        "PATH": ":".join(dict.fromkeys((*folders, *SYSTEM_PATH))),
        "HOME": str(run.run_dir / "home"),
        "TMPDIR": str(run.run_dir / "tmp"),
        "LANG": "C.UTF-8",
        "NO_COLOR": "1",
        "TERM": "dumb",
        **launch.env,
    }
    key_env = key_env_for(spec)
    if key_env and run.model_key:
        env[key_env] = run.model_key
    return env


def run_engine(
    run: EngineRun, scratch: Scratch, sandbox: Sandbox = run_in_process_group
) -> EngineOutcome:
    """Run the engine in `scratch` through `sandbox`; classify the end; capture the diff."""
    home, prompt_file = run.run_dir / "home", run.run_dir / "prompt.md"
    for folder in (home, run.run_dir / "tmp"):
        folder.mkdir(parents=True, exist_ok=True)
    prompt_file.write_text(run.prompt, encoding="utf-8")
    context = LaunchContext(run.executable, home, prompt_file, run.mcp)
    launch = ENGINES[run.spec.engine].launch(run.spec, context)
    for relative, content in launch.files.items():
        (home / relative).parent.mkdir(parents=True, exist_ok=True)
        (home / relative).write_text(content, encoding="utf-8")
    transcript, stderr = run.run_dir / "transcript.jsonl", run.run_dir / "stderr.log"
    result = sandbox(
        launch.argv,
        env=engine_environment(run.spec, launch, run),
        cwd=scratch.path,
        stdin=prompt_file if launch.prompt_on_stdin else None,
        stdout=transcript,
        stderr=stderr,
        timeout_seconds=run.spec.timeout_seconds,
    )
    secrets = [s for s in (run.model_key, run.mcp.token if run.mcp else "") if s]
    for path in (transcript, stderr):
        redact(path, secrets)
    summary = read_transcript(run.spec.engine, transcript)
    errors = _tail(stderr)
    kind, reason = classify(summary, result, errors)
    return EngineOutcome(
        kind=kind,
        reason=reason,
        exit_code=result.exit_code,
        diff=capture_diff(scratch),
        transcript=transcript,
        stderr_tail=errors,
        usage=summary.usage,
        session_id=summary.session_id,
        last_words=summary.last_text,
    )


def outcome_observation(outcome: EngineOutcome) -> Observation:
    """The `engine_run_finished` event: how it ended, what it changed, what it spent."""
    transcript = outcome.transcript.read_bytes() if outcome.transcript.exists() else b""
    return Observation(
        EventType.ENGINE_RUN_FINISHED,
        outcome.kind,
        {
            "reason": outcome.reason,
            "exit_code": outcome.exit_code,
            "base_commit": outcome.diff.base_commit,
            "changed": [{"path": f.path, "status": f.status} for f in outcome.diff.files],
            "usage": asdict(outcome.usage),
            "session_id": outcome.session_id,
            "transcript_sha256": hashlib.sha256(transcript).hexdigest(),
        },
    )


def redact(path: Path, secrets: list[str]) -> None:
    """Blank every secret in `path` (engines echo keys in error messages)."""
    if not path.exists() or not secrets:
        return
    data = path.read_bytes()
    cleaned = data
    for secret in secrets:
        cleaned = cleaned.replace(secret.encode(), REDACTED.encode())
    if cleaned != data:
        path.write_bytes(cleaned)


def _tail(path: Path) -> str:
    if not path.exists():
        return ""
    return path.read_text(encoding="utf-8", errors="replace")[-STDERR_TAIL_CHARS:]
