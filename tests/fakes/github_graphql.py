"""The fake GitHub's GraphQL endpoint: the label mutations SOMAS sends, on GitHub's own schema.

Every document is parsed and validated against GitHub's published GraphQL schema (npm
`@octokit/graphql-schema`, its introspection JSON) and then executed by graphql-core on that
schema, so what is asked and what is answered have exactly the schema's types. Only the two
label mutations of an issue are implemented; any other field resolves to nothing, which a test
sees. Errors look like GitHub's (`type: NOT_FOUND`), which PyGithub turns into a 404.

GitHub's schema breaks two of graphql-js's rules about deprecation on interfaces, so it is
built with `assume_valid` (the documents are still validated against it).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLSchema,
    OperationType,
    build_client_schema,
    graphql_sync,
    parse,
    validate,
)
from graphql.language import OperationDefinitionNode

from tests.fakes.openapi import ROOT

SCHEMA_PATH = ROOT / "node_modules" / "@octokit" / "graphql-schema" / "schema.json"
# Where PyGithub sends GraphQL for a GitHub Enterprise style API root ending in /api/v3.
GRAPHQL_PATH = "/api/graphql"


@functools.cache
def schema() -> GraphQLSchema:
    """GitHub's GraphQL schema (built once per process)."""
    if not SCHEMA_PATH.exists():
        raise RuntimeError(f"{SCHEMA_PATH} is missing: run `make test` (npm ci)")
    data = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return build_client_schema(data.get("data", data), assume_valid=True)


class NotFound(Exception):
    """A global id that names nothing (GitHub's NOT_FOUND)."""


class Forbidden(Exception):
    """An object this token may not change (GitHub's FORBIDDEN)."""


def is_mutation(body: Any) -> bool:
    """Whether a GraphQL request body asks for a mutation (a write)."""
    try:
        document = parse(str(body.get("query", "")))
    except (GraphQLError, AttributeError):
        return False
    return any(
        isinstance(d, OperationDefinitionNode) and d.operation == OperationType.MUTATION
        for d in document.definitions
    )


def answer(root: object, body: Any) -> tuple[dict[str, Any], list[str]]:
    """GitHub's answer to one GraphQL request (always HTTP 200), and the contract violations."""
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return {"errors": [{"message": "A query attribute must be specified"}]}, [
            "graphql: the request has no query"
        ]
    try:
        document = parse(body["query"])
    except GraphQLError as exc:
        return {"errors": [exc.formatted]}, [f"graphql: {exc.message}"]
    problems = validate(schema(), document)
    if problems:
        return {"errors": [p.formatted for p in problems]}, [
            f"graphql: {p.message}" for p in problems
        ]
    result = graphql_sync(
        schema(), body["query"], root_value=root, variable_values=body.get("variables") or {}
    )
    reply: dict[str, Any] = {"data": result.data}
    if result.errors:
        reply["errors"] = [_github_error(error) for error in result.errors]
    return reply, []


def _github_error(error: GraphQLError) -> dict[str, Any]:
    formatted: dict[str, Any] = dict(error.formatted)
    kinds: dict[type, str] = {NotFound: "NOT_FOUND", Forbidden: "FORBIDDEN"}
    kind = kinds.get(type(error.original_error))
    if kind:
        formatted["type"] = kind
    return formatted


def labelable(issue: dict[str, Any], label: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """An issue as the `Labelable` interface answers it (its labels, as asked)."""

    def labels(info: Any, **args: Any) -> dict[str, Any]:
        first = int(args.get("first") or 100)
        # GraphQL's `id` is the global id (REST's numeric `id` is `databaseId` here).
        nodes = [{**label(name), "id": label_node_id(name)} for name in issue["labels"][:first]]
        return {"nodes": nodes, "totalCount": len(issue["labels"])}

    return {"__typename": "Issue", "id": issue_node_id(issue["number"]), "labels": labels}


def issue_node_id(number: int) -> str:
    """The global id of an issue of the fake's repository (webhook payloads carry the same)."""
    return f"I_kwDOfake{number}"


def label_node_id(name: str) -> str:
    """The global id of a label of the fake's repository, by name (payloads carry the same)."""
    return "LA_kwDOfake" + name.encode().hex()
