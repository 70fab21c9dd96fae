"""Load our JSON Schemas and turn the best validation error into one readable line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from somas_action.config.resources import schemas_dir
from somas_action.core.domain import JsonObject

_DEFAULTING_BASE = Draft202012Validator


def _fill_defaults(
    validator: Any, properties: JsonObject, instance: Any, schema: JsonObject
) -> Iterator[ValidationError]:
    # The jsonschema FAQ recipe: fill `default` values while validating `properties`.
    if isinstance(instance, dict):
        for name, subschema in properties.items():
            if "default" in subschema and name not in instance:
                instance[name] = json.loads(json.dumps(subschema["default"]))
    yield from Draft202012Validator.VALIDATORS["properties"](
        validator, properties, instance, schema
    )


DefaultingValidator = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
    _DEFAULTING_BASE, {"properties": _fill_defaults}
)


@cache
def _registry() -> Registry:
    resources = []
    for path in sorted(schemas_dir().rglob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


@cache
def load_schema(name: str) -> JsonObject:
    """The schema `schemas/<name>.schema.json` as a dict."""
    path = schemas_dir() / f"{name}.schema.json"
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@cache
def _validator(name: str, fill_defaults: bool) -> Any:
    cls = DefaultingValidator if fill_defaults else Draft202012Validator
    return cls(load_schema(name), registry=_registry())


def field_path(error: ValidationError) -> str:
    """`pipeline.stages[2].max_retries` style path of an error ("(top level)" for the root)."""
    parts = ""
    for item in error.absolute_path:
        parts += f"[{item}]" if isinstance(item, int) else (f".{item}" if parts else str(item))
    return parts or "(top level)"


def problems(name: str, instance: Any, fill_defaults: bool = False) -> list[str]:
    """Every problem with `instance` against schema `name`, one `path: message` each."""
    validator = _validator(name, fill_defaults)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{field_path(e)}: {_short(e)}" for e in errors]


def first_problem(name: str, instance: Any, fill_defaults: bool = False) -> str | None:
    """The most relevant problem with `instance` (filling defaults if asked), or None."""
    validator = _validator(name, fill_defaults)
    error = best_match(validator.iter_errors(instance))
    return None if error is None else f"{field_path(error)}: {_short(error)}"


def _short(error: ValidationError) -> str:
    message = error.message
    return message if len(message) <= 200 else message[:197] + "..."


def problems_in(schema: JsonObject, instance: Any, limit: int = 5) -> list[str]:
    """Problems with `instance` against an in-memory schema whose `$ref`s are ours."""
    validator = Draft202012Validator(schema, registry=_registry())
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{field_path(e)}: {_short(e)}" for e in errors[:limit]]
