"""Edits SOMAS makes to `config.yml` itself: the runbook's emergency stop switch."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from somas_action.config.loader import config_path, parse_config
from somas_action.core.errors import ConfigError
from somas_action.state.jsonio import atomic_write_text


def set_pipeline_enabled(repo: Path, enabled: bool) -> tuple[Path, Path | None, str | None]:
    """Set `pipeline.enabled` in config.yml, editing the one line so comments survive.

    Returns (config, its backup, a warning). The emergency stop must work exactly when the
    config is broken: a config.yml that does not load gets the same one-line text edit, and
    the warning says the file needs fixing.
    """
    path = config_path(repo)
    original = path.read_text(encoding="utf-8") if path.exists() else ""
    warning = _problem(original, path)
    try:
        text = _edited(original, path, enabled)
    except ConfigError:
        if warning is None:
            raise
        # A config that does not load stops every run anyway (each run loads it first).
        return path, None, f"{_cause(warning)}; no run can start until it is fixed"
    if warning is None:
        config = parse_config(yaml.safe_load(text), path)  # never break a config that loaded
        if config.enabled != enabled:
            raise ConfigError(f"{path}: pipeline.enabled: could not set it; edit the file by hand")
    elif not re.search(rf"^\s+enabled: {'true' if enabled else 'false'}\b", text, re.MULTILINE):
        raise ConfigError(f"{path}: pipeline.enabled: could not set it; edit the file by hand")
    backup = None
    if path.exists():
        backup = path.with_name(f"{path.name}.backup")
        shutil.copy2(path, backup)
    atomic_write_text(path, text)
    return path, backup, warning


def _problem(text: str, path: Path) -> str | None:
    """Why config.yml does not load (None: it does)."""
    try:
        parse_config(yaml.safe_load(text), path)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        return (
            f"{path} is not valid YAML{where}: pipeline.enabled was set by a text edit; "
            "fix the file"
        )
    except ConfigError as exc:
        return f"{exc}; pipeline.enabled was set by a text edit"
    return None


def _cause(warning: str) -> str:
    return warning.split(": pipeline.enabled")[0].split("; pipeline.enabled")[0]


def _edited(original: str, path: Path, enabled: bool) -> str:
    """config.yml's text with `pipeline.enabled` set, every other line untouched."""
    lines = original.splitlines()
    value = "true" if enabled else "false"
    top = next(
        (i for i, line in enumerate(lines) if re.fullmatch(r"pipeline:\s*(#.*)?", line)), None
    )
    if top is None:
        if re.search(r"^pipeline:", original, re.MULTILINE):
            raise ConfigError(f"{path}: pipeline: write it as a block mapping to edit it here")
        lines += ["pipeline:", f"  enabled: {value}"]
    else:
        block = []
        for i in range(top + 1, len(lines)):
            if lines[i].strip() and not lines[i][0].isspace():
                break  # the next top-level key
            if lines[i].strip() and not lines[i].lstrip().startswith("#"):
                block.append(i)
        indent = re.match(r"\s+", lines[block[0]]).group(0) if block else "  "  # type: ignore[union-attr]
        pattern = re.compile(rf"{indent}enabled:\s*[^#\s]*(\s+#.*)?")
        hit = next((i for i in block if pattern.fullmatch(lines[i])), None)
        if hit is None:
            lines.insert(top + 1, f"{indent}enabled: {value}")
        else:
            comment = pattern.fullmatch(lines[hit]).group(1) or ""  # type: ignore[union-attr]
            lines[hit] = f"{indent}enabled: {value}{comment}"
    return "\n".join(lines) + "\n"
