"""A small evaluator of GitHub Actions expressions, for cross-checking our workflows.

It covers what our workflows use: literals, context paths (`needs.authorize.outputs.verdict`,
`inputs.somas-ref`), `==`, `!=`, `!`, `&&`, `||`, parentheses and `startsWith`/`contains`,
with GitHub's rules: `&&`/`||` return an operand, string comparison ignores case, a missing
property is null, and `${{ }}` inside a string is interpolated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<number>\d+(?:\.\d+)?)"
    r"|(?P<op>==|!=|&&|\|\||[!(),])|(?P<name>[A-Za-z_][\w-]*(?:\.[A-Za-z_*][\w-]*)*))"
)
_EMBEDDED = re.compile(r"\$\{\{(.*?)\}\}", re.DOTALL)


def _tokens(text: str) -> list[tuple[str, str]]:
    found, position = [], 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise ValueError(f"cannot read expression at {text[position:]!r}")
        kind = match.lastgroup or ""
        found.append((kind, match.group(kind)))
        position = match.end()
    return found


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, "")


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, str) and isinstance(right, str):
        return left.lower() == right.lower()
    return bool(left == right)


class _Parser:
    def __init__(self, text: str, context: Mapping[str, Any]) -> None:
        self.tokens = _tokens(text)
        self.context = context
        self.index = 0

    def _peek(self) -> str | None:
        return self.tokens[self.index][1] if self.index < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.tokens[self.index]
        if expected is not None and token[1] != expected:
            raise ValueError(f"expected {expected!r}, found {token[1]!r}")
        self.index += 1
        return token

    def parse(self) -> Any:
        value = self._or()
        if self.index != len(self.tokens):
            raise ValueError(f"unexpected {self._peek()!r}")
        return value

    def _or(self) -> Any:
        value = self._and()
        while self._peek() == "||":
            self._take()
            right = self._and()
            value = value if _truthy(value) else right
        return value

    def _and(self) -> Any:
        value = self._compare()
        while self._peek() == "&&":
            self._take()
            right = self._compare()
            value = right if _truthy(value) else value
        return value

    def _compare(self) -> Any:
        value = self._unary()
        while self._peek() in ("==", "!="):
            op = self._take()[1]
            right = self._unary()
            value = _equal(value, right) if op == "==" else not _equal(value, right)
        return value

    def _unary(self) -> Any:
        if self._peek() == "!":
            self._take()
            return not _truthy(self._unary())
        return self._primary()

    def _primary(self) -> Any:
        kind, text = self._take()
        if text == "(":
            value = self._or()
            self._take(")")
            return value
        if kind == "string":
            return text[1:-1].replace("''", "'")
        if kind == "number":
            return float(text)
        if text in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[text]
        if self._peek() == "(":
            return self._call(text)
        return self._lookup(text)

    def _call(self, name: str) -> Any:
        self._take("(")
        args = [self._or()]
        while self._peek() == ",":
            self._take()
            args.append(self._or())
        self._take(")")
        haystack, needle = (str(a or "").lower() for a in args)
        if name.lower() == "startswith":
            return haystack.startswith(needle)
        if name.lower() == "contains":
            return needle in haystack
        raise ValueError(f"function {name} is not supported here")

    def _lookup(self, path: str) -> Any:
        value: Any = self.context
        for part in path.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        return value


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """The value of one expression (the text inside `${{ }}`, or an `if:` condition)."""
    match = _EMBEDDED.fullmatch(expression.strip())
    return _Parser(match.group(1) if match else expression, context).parse()


def interpolate(text: str, context: Mapping[str, Any]) -> str:
    """A string with every `${{ }}` replaced by its value (null becomes empty, as on GitHub)."""

    def value(match: re.Match[str]) -> str:
        result = _Parser(match.group(1), context).parse()
        return "" if result is None else str(result)

    return _EMBEDDED.sub(value, text)
