"""Every name that is a fact of the file layout or of the pipeline, defined once."""

from __future__ import annotations

import re

from somas_action.core.errors import StateError

SOMAS_DIR = ".somas"
CONFIG_FILE = "config.yml"
AGENTS_DIR = "agents"
PROJECTS_DIR = "projects"
TRACKER_DIR = "tracker"

STATE_FILE = "state.json"
TRANSITIONS_FILE = "transitions.jsonl"
DEAD_LETTERS_FILE = "dead_letters.json"
ARTIFACTS_DIR = "artifacts"
STATE_BACKUP_FILE = "state.json.backup"
# Repository-wide circuit breakers (shared by every project and run).
BREAKERS_FILE = "breakers.json"

TEST_RESULTS_ARTIFACT = "test_results.json"
VALIDATION_REPORT_ARTIFACT = "validation_report.json"

STATE_SCHEMA_VERSION = 1
EVENT_SCHEMA_VERSION = 1

DEFAULT_STAGES = (
    "intake",
    "specification",
    "architecture",
    "implementation",
    "validation",
    "review",
    "release",
)

# Project status values (state.json `.status`).
PENDING = "pending"
IN_PROGRESS = "in_progress"
WAITING = "waiting"
COMPLETED = "completed"
FAILED = "failed"
PAUSED = "paused"
CANCELLED = "cancelled"
# Parked: the system deferred the work (a provider is down, a wait longer than the run can
# afford); `advance` continues it once the reason has passed. Not an operator pause.
PARKED = "parked"
PROJECT_STATUSES = (PENDING, IN_PROGRESS, WAITING, COMPLETED, FAILED, PAUSED, CANCELLED, PARKED)
TERMINAL_STATUSES = (COMPLETED, CANCELLED)

# Stage status values (state.json `.stages.<stage>.status`).
STAGE_PENDING = "pending"
STAGE_IN_PROGRESS = "in_progress"
STAGE_RETRYING = "retrying"
STAGE_WAITING = "waiting"
STAGE_COMPLETED = "completed"
STAGE_FAILED = "failed"
STAGE_STATUSES = (
    STAGE_PENDING,
    STAGE_IN_PROGRESS,
    STAGE_RETRYING,
    STAGE_WAITING,
    STAGE_COMPLETED,
    STAGE_FAILED,
)

# Human gate status values (state.json `.human_gate.status`).
GATE_WAITING = "waiting"
GATE_APPROVED = "approved"
GATE_REJECTED = "rejected"

# Incident status values (state.json `.incident.status`).
INCIDENT_OPEN = "open"
INCIDENT_RESOLVED = "resolved"

# Circuit-breaker states (breakers.json and state.json `.circuit_breakers.<service>.state`).
BREAKER_CLOSED = "closed"
BREAKER_OPEN = "open"
BREAKER_HALF_OPEN = "half_open"

# Circuit-breaker services besides each AI provider's own.
AI_API = "ai_api"  # the AI layer as a whole: open = no agent call at all
GITHUB_API = "github_api"  # the GitHub API used by the tracker adapter

PROJECT_LABEL = "somas:project"
LABEL_PREFIX = "somas:"

PROJECT_ID_RE = re.compile(r"^project-[1-9][0-9]{0,9}$")
STAGE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
AGENT_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
CHECKPOINT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}$")
# The branch pull requests target when the repository does not say (a local run, a test).
DEFAULT_BASE_BRANCH = "main"


def project_id_for(issue_number: int) -> str:
    """The project id of an issue: `project-<issue number>`."""
    return f"project-{issue_number}"


def project_branch_for(project_id: str) -> str:
    """The git branch that holds a project's generated code."""
    return f"somas/{project_id}"


def validate_project_id(project_id: str) -> str:
    """Refuse anything but `project-<n>`, so no path can escape `.somas/projects/`."""
    if not PROJECT_ID_RE.match(project_id):
        raise StateError(
            f"invalid project id {project_id!r}: expected project-<issue number>, e.g. project-7"
        )
    return project_id


def issue_number_of(project_id: str) -> int:
    """The issue number a (valid) project id names."""
    return int(validate_project_id(project_id).split("-", 1)[1])


def checkpoint_id(seq: int, stage: str) -> str:
    """The id of the checkpoint recorded by event `seq` of a project: `cp-000042-validation`."""
    return f"cp-{seq:06d}-{stage}"
