"""Edits SOMAS makes to `config.yml` itself: the runbook's emergency stop switch."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import yaml

from somas_action.config.loader import config_path, parse_config
from somas_action.core.errors import ConfigError
from somas_action.state.jsonio import atomic_write_text


def set_pipeline_enabled(repo: Path, enabled: bool) -> tuple[Path, Path | None]:
    """Set `pipeline.enabled` in config.yml, editing the one line so comments survive."""
    path = config_path(repo)
    original = path.read_text(encoding="utf-8") if path.exists() else ""
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
    text = "\n".join(lines) + "\n"
    config = parse_config(yaml.safe_load(text), path)  # never write a config that does not load
    if config.enabled != enabled:
        raise ConfigError(f"{path}: pipeline.enabled: could not set it; edit the file by hand")
    backup = None
    if path.exists():
        backup = path.with_name(f"{path.name}.backup")
        shutil.copy2(path, backup)
    atomic_write_text(path, text)
    return path, backup
