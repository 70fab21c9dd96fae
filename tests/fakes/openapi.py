"""GitHub's official REST OpenAPI description (npm @octokit/openapi) as a strict contract.

`Contract.check_request` / `check_response` return the ways a request or response departs
from the documented operation: an unknown path or method, an undocumented query parameter or
body field, a status the operation does not list, a body that does not match its schema. The
description does not close its objects (`additionalProperties` is absent almost everywhere), so
the checks here treat every object with `properties` as closed: a field the description does not
name is a violation, in what we send and in what the fake answers.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema

ROOT = Path(__file__).resolve().parents[2]
SPEC_PATH = ROOT / "node_modules" / "@octokit" / "openapi" / "generated" / "api.github.com.json"
_URN = "urn:github-rest-openapi"


def _convert(node: Any) -> Any:
    """OpenAPI 3.0 schema dialect -> JSON Schema draft 4: `nullable`, and absolute refs."""
    if isinstance(node, list):
        return [_convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _convert(value) for key, value in node.items() if key not in ("example",)}
    ref = out.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        out["$ref"] = _URN + ref
    if out.pop("nullable", False) is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = [*out["enum"], None]
        else:
            return {"anyOf": [out, {"type": "null"}]}
    return out


@dataclass(frozen=True)
class Operation:
    """One documented method on one path template."""

    template: str
    method: str
    spec: dict[str, Any]
    path_parameters: tuple[dict[str, Any], ...]

    @property
    def operation_id(self) -> str:
        """GitHub's id, e.g. `issues/create-comment`."""
        return str(self.spec.get("operationId", ""))

    def parameters(self) -> Iterator[dict[str, Any]]:
        """Path-level and operation-level parameters (refs resolved)."""
        yield from self.path_parameters
        yield from self.spec.get("parameters", ())


class Contract:
    """The description, loaded once, with strict request and response checks."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.raw = spec
        converted = _convert({"components": spec["components"]})
        resource = referencing.Resource.from_contents(
            converted, default_specification=referencing.jsonschema.DRAFT4
        )
        self.registry: referencing.Registry[Any] = referencing.Registry().with_resource(
            _URN, resource
        )
        self.components = converted["components"]
        self._routes: list[tuple[re.Pattern[str], str]] = []
        for template in spec["paths"]:
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
            self._routes.append((re.compile(f"^{pattern}$"), template))
        # Literal paths before templated ones: /labels/{name} must not swallow a real route.
        self._routes.sort(key=lambda route: route[1].count("{"))
        self._operations: dict[tuple[str, str], Operation | None] = {}
        self._validators: dict[int, jsonschema.Draft4Validator] = {}
        self._examples: dict[tuple[str, str, str, str], Any] = {}

    # -- lookup --------------------------------------------------------------------------------

    def resolve(self, node: Any) -> Any:
        """Follow `$ref`s (in the converted components) to the node they name."""
        while isinstance(node, dict) and "$ref" in node:
            pointer = node["$ref"].split("#", 1)[1]
            target: Any = {"components": self.components}
            for part in pointer.strip("/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def operation(self, method: str, path: str) -> Operation | None:
        """The documented operation for a concrete path, or None (memoized per path)."""
        key = (method.lower(), path)
        if key not in self._operations:
            self._operations[key] = self._find_operation(method, path)
        return self._operations[key]

    def _find_operation(self, method: str, path: str) -> Operation | None:
        for pattern, template in self._routes:
            if pattern.match(path):
                item = self.raw["paths"][template]
                op = item.get(method.lower())
                if op is None:
                    return None
                op = _convert(op)
                params = tuple(self.resolve(p) for p in _convert(item.get("parameters", [])))
                op["parameters"] = [self.resolve(p) for p in op.get("parameters", [])]
                return Operation(template, method.upper(), op, params)
        return None

    def example(self, method: str, template: str, status: str, name: str = "default") -> Any:
        """The description's own example answer for an operation (our fake's templates)."""
        key = (method, template, status, name)
        if key not in self._examples:
            self._examples[key] = self._example(method, template, status, name)
        return copy.deepcopy(self._examples[key])

    def _example(self, method: str, template: str, status: str, name: str) -> Any:
        response = self.raw["paths"][template][method.lower()]["responses"][status]
        content = response["content"]["application/json"]
        examples = content["examples"]
        example = examples.get(name) or next(iter(examples.values()))
        while "$ref" in example:
            example = self.raw["components"]["examples"][example["$ref"].rsplit("/", 1)[1]]
        value = example["value"]
        while isinstance(value, dict) and set(value) == {"$ref"}:
            value = self.raw["components"]["examples"][value["$ref"].rsplit("/", 1)[1]]["value"]
        return json.loads(json.dumps(value))

    # -- checks --------------------------------------------------------------------------------

    def check_request(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> list[str]:
        """How a request departs from the description (empty when it conforms)."""
        op = self.operation(method, path)
        if op is None:
            known = any(pattern.match(path) for pattern, _ in self._routes)
            return [f"{method} {path}: {'method not documented' if known else 'unknown path'}"]
        where = f"{method} {op.template} ({op.operation_id})"
        problems = []
        documented = {p["name"]: p for p in op.parameters() if p.get("in") == "query"}
        for name, values in query.items():
            param = documented.get(name)
            if param is None:
                problems.append(f"{where}: query parameter {name!r} is not documented")
                continue
            schema = param.get("schema", {})
            for value in values:
                problems += [
                    f"{where}: query {name}: {p}" for p in self._query_value(value, schema)
                ]
        request_body = self.resolve(op.spec.get("requestBody"))
        if body is None:
            if request_body and request_body.get("required"):
                problems.append(f"{where}: a request body is required")
            return problems
        if not request_body:
            return [*problems, f"{where}: sends a body the operation does not take"]
        schema = request_body["content"]["application/json"]["schema"]
        problems += [f"{where}: request {p}" for p in self.check_body(body, schema)]
        return problems

    def check_response(self, method: str, path: str, status: int, body: Any) -> list[str]:
        """How a response departs from the description."""
        op = self.operation(method, path)
        if op is None:
            return [f"{method} {path}: response to an undocumented operation"]
        where = f"{method} {op.template} ({op.operation_id}) -> {status}"
        responses = op.spec["responses"]
        response = responses.get(str(status)) or responses.get("default")
        if response is None:
            return [f"{where}: status not documented (documented: {', '.join(responses)})"]
        response = self.resolve(response)
        content = (response.get("content") or {}).get("application/json")
        if content is None or "schema" not in content:
            return [] if body is None else [f"{where}: a body where none is documented"]
        if body is None:
            return [f"{where}: no body where one is documented"]
        return [f"{where}: response {p}" for p in self.check_body(body, content["schema"])]

    def check_body(self, body: Any, schema: dict[str, Any]) -> list[str]:
        """Schema errors plus undocumented fields."""
        validator = self._validator(schema)
        problems = [
            f"{'/'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message[:200]}"
            for error in validator.iter_errors(body)
        ]
        return problems + self.undocumented(body, schema, "")

    def _validator(self, schema: dict[str, Any]) -> jsonschema.Draft4Validator:
        # Schemas live as long as the contract, so their id is a stable cache key.
        validator = self._validators.get(id(schema))
        if validator is None:
            validator = jsonschema.Draft4Validator(schema, registry=self.registry)
            self._validators[id(schema)] = validator
        return validator

    def _valid(self, instance: Any, schema: dict[str, Any]) -> bool:
        return bool(self._validator(schema).is_valid(instance))

    def undocumented(self, instance: Any, schema: Any, where: str) -> list[str]:
        """Fields of `instance` that no (matching) branch of `schema` names."""
        schema = self.resolve(schema)
        if not isinstance(schema, dict):
            return []
        if isinstance(instance, list):
            items = schema.get("items")
            if items is None:
                branches = self._branches(instance, schema)
                items = next((b["items"] for b in branches if "items" in b), None)
            if items is None:
                return []
            found = []
            for index, item in enumerate(instance):
                found += self.undocumented(item, items, f"{where}[{index}]")
            return found
        if not isinstance(instance, dict):
            return []
        properties: dict[str, Any] = {}
        closed = True
        described = False
        for branch in self._branches(instance, schema):
            if "properties" in branch:
                described = True
                for key, sub in branch["properties"].items():
                    properties.setdefault(key, sub)
            extra = branch.get("additionalProperties")
            if extra is True or isinstance(extra, dict):
                closed = False
        found = []
        for key, value in instance.items():
            if key in properties:
                found += self.undocumented(value, properties[key], f"{where}.{key}")
            elif closed and described:
                found.append(f"{where}.{key}: field not in the description")
        return found

    def _branches(self, instance: Any, schema: dict[str, Any]) -> list[dict[str, Any]]:
        """The schema and the parts of its allOf/anyOf/oneOf that apply to `instance`."""
        out = [schema]
        for part in schema.get("allOf", ()):
            out += self._branches(instance, self.resolve(part))
        for key in ("anyOf", "oneOf"):
            options = [self.resolve(p) for p in schema.get(key, ())]
            matching = [p for p in options if self._valid(instance, p)] or options
            for option in matching:
                out += self._branches(instance, option)
        return out

    @staticmethod
    def _query_value(value: str, schema: dict[str, Any]) -> list[str]:
        kind = schema.get("type")
        if kind == "integer" and not re.fullmatch(r"-?\d+", value):
            return [f"{value!r} is not an integer"]
        if kind == "boolean" and value not in ("true", "false"):
            return [f"{value!r} is not a boolean"]
        enum = schema.get("enum")
        if enum and value not in enum:
            return [f"{value!r} is not one of {enum}"]
        return []


@functools.cache
def contract() -> Contract:
    """The contract, loaded once per test session."""
    if not SPEC_PATH.exists():
        raise RuntimeError(
            f"{SPEC_PATH} is missing: run `make test` (it runs `npm ci` for the test data)"
        )
    return Contract(json.loads(SPEC_PATH.read_text(encoding="utf-8")))
