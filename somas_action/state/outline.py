"""Symbol outlines of source files: what is defined where, one line a symbol.

Python through the standard `ast` module. JavaScript, TypeScript, Go and Rust through
tree-sitter, when the optional `outline` extra is installed (prebuilt wheels from PyPI:
`tree-sitter` and one grammar package per language); without it those files get no outline.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any

# Definition nodes per tree-sitter grammar, and how deep to look (class and impl bodies).
_DEFINITIONS = {
    "javascript": {
        "function_declaration",
        "generator_function_declaration",
        "class_declaration",
        "method_definition",
    },
    "typescript": {
        "function_declaration",
        "class_declaration",
        "abstract_class_declaration",
        "method_definition",
        "interface_declaration",
        "type_alias_declaration",
        "enum_declaration",
    },
    "go": {"function_declaration", "method_declaration", "type_spec"},
    "rust": {"function_item", "struct_item", "enum_item", "trait_item", "impl_item", "mod_item"},
}
_DEFINITIONS["tsx"] = _DEFINITIONS["typescript"]
_LANGUAGE_OF_SUFFIX = {
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".rs": "rust",
}
_MAX_DEPTH = 4
_MAX_SIGNATURE = 100


def outline(path: str, text: str) -> list[str] | None:
    """The file's symbols as `L<line> <signature>` lines (indented by nesting); None: unknown."""
    if path.endswith(".py"):
        return python_outline(text)
    suffix = path[path.rfind(".") :] if "." in path else ""
    language = _LANGUAGE_OF_SUFFIX.get(suffix)
    if language is None:
        return None
    parser = _parser(language)
    return None if parser is None else _tree_sitter_outline(parser, language, text)


def outline_languages() -> list[str]:
    """The languages outlined on this installation (Python always)."""
    return ["python", *(name for name in sorted(_DEFINITIONS) if _parser(name) is not None)]


# -- Python ------------------------------------------------------------------------------------


def python_outline(text: str) -> list[str]:
    """Classes and functions (with their arguments), methods indented under their class."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError) as exc:
        return [f"(not parsed: {type(exc).__name__} on line {getattr(exc, 'lineno', '?')})"]
    return list(_python_nodes(tree.body, 0))


def _python_nodes(body: list[ast.stmt], depth: int) -> Iterator[str]:
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
            returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
            signature = f"{prefix} {node.name}({ast.unparse(node.args)}){returns}"
            yield f"{'  ' * depth}L{node.lineno} {_short(signature)}"
        elif isinstance(node, ast.ClassDef):
            bases = ", ".join(ast.unparse(b) for b in node.bases)
            yield f"{'  ' * depth}L{node.lineno} class {node.name}{f'({bases})' if bases else ''}"
            if depth < 1:
                yield from _python_nodes(node.body, depth + 1)


# -- tree-sitter -------------------------------------------------------------------------------


@cache
def _parser(language: str) -> Any | None:
    """A tree-sitter parser for `language`, or None when the packages are not installed."""
    try:
        from tree_sitter import Language, Parser
    except ImportError:
        return None
    loader = _grammar(language)
    return None if loader is None else Parser(Language(loader()))


def _grammar(language: str) -> Callable[[], Any] | None:
    try:
        if language == "javascript":
            import tree_sitter_javascript

            return tree_sitter_javascript.language
        if language in ("typescript", "tsx"):
            import tree_sitter_typescript

            if language == "tsx":
                return tree_sitter_typescript.language_tsx
            return tree_sitter_typescript.language_typescript
        if language == "go":
            import tree_sitter_go

            return tree_sitter_go.language
        import tree_sitter_rust

        return tree_sitter_rust.language
    except ImportError:
        return None


def _tree_sitter_outline(parser: Any, language: str, text: str) -> list[str]:
    root = parser.parse(text.encode()).root_node
    wanted = _DEFINITIONS[language]
    lines: list[str] = []

    def visit(node: Any, depth: int, nesting: int) -> None:
        for child in node.named_children:
            if child.type in wanted:
                first = child.text.decode(errors="replace").splitlines()[0].strip()
                lines.append(f"{'  ' * nesting}L{child.start_point[0] + 1} {_short(first)}")
                if depth < _MAX_DEPTH:
                    visit(child, depth + 1, nesting + 1)
            elif depth < _MAX_DEPTH:
                visit(child, depth + 1, nesting)

    visit(root, 0, 0)
    return lines


def _short(signature: str) -> str:
    return signature if len(signature) <= _MAX_SIGNATURE else signature[: _MAX_SIGNATURE - 1] + "…"
