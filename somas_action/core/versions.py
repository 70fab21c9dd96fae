"""The repository's current version, for the releaser: from its manifest, else its newest tag."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

VERSION_FILES = ("pyproject.toml", "package.json", "Cargo.toml")
_TAG = re.compile(r"^v(?P<nums>\d+(?:\.\d+){0,2})(?P<rest>[-.+].*)?$")


@dataclass(frozen=True)
class FoundVersion:
    """A version and where it was read (`pyproject.toml`, `tag v8.0.2` …)."""

    version: str
    source: str


def current_version(files: Mapping[str, str], tags: Iterable[str]) -> FoundVersion | None:
    """From `files` (path -> text of the VERSION_FILES present) in that order, else the newest
    `v*` tag; None when neither says."""
    readers = {
        "pyproject.toml": _pyproject_version,
        "package.json": _package_json_version,
        "Cargo.toml": _cargo_version,
    }
    for name in VERSION_FILES:
        if name in files:
            version = readers[name](files[name])
            if version:
                return FoundVersion(version, name)
    return newest_tag(tags)


def newest_tag(tags: Iterable[str]) -> FoundVersion | None:
    """The highest `vX.Y.Z` tag (a pre-release such as `v2.0.0-rc1` ranks below `v2.0.0`)."""
    ranked = [(key, tag) for tag in tags if (key := _tag_key(tag)) is not None]
    if not ranked:
        return None
    _, tag = max(ranked)
    return FoundVersion(tag.removeprefix("v"), f"tag {tag}")


def _tag_key(tag: str) -> tuple[tuple[int, ...], int, str] | None:
    match = _TAG.match(tag.strip())
    if match is None:
        return None
    nums = tuple(int(n) for n in match["nums"].split("."))
    nums = nums + (0,) * (3 - len(nums))
    rest = match["rest"] or ""
    final = 0 if rest.startswith("-") else 1  # `-rc1` is a pre-release; `+build` is final
    return nums, final, rest


def _toml(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


def _pyproject_version(text: str) -> str | None:
    data = _toml(text)
    project = data.get("project", {})
    if isinstance(project.get("version"), str):
        return str(project["version"])
    poetry = data.get("tool", {}).get("poetry", {})
    version = poetry.get("version") if isinstance(poetry, dict) else None
    return version if isinstance(version, str) else None


def _package_json_version(text: str) -> str | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return version if isinstance(version, str) and version else None


def _cargo_version(text: str) -> str | None:
    data = _toml(text)
    version = data.get("package", {}).get("version")
    if isinstance(version, str):
        return version
    shared = data.get("workspace", {}).get("package", {}).get("version")
    return shared if isinstance(shared, str) else None
