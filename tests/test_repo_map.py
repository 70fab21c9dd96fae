"""The repository map: files, symbols (ast and tree-sitter) and what the issue names, in budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from somas_action.state.git import GitWorkspace
from somas_action.state.outline import outline, outline_languages, python_outline
from somas_action.state.repo_map import named_paths, repository_map
from tests import tool_fixtures as lib

SOURCES = {
    "web/app.ts": (
        "export interface Item { id: number }\n"
        "export class Cart {\n  add(item: Item): void {}\n}\n"
        "export function total(items: Item[]): number { return 0 }\n"
    ),
    "web/util.js": "function slug(s) { return s }\nclass Box {\n  open() {}\n}\n",
    "cmd/main.go": (
        "package main\n\ntype Server struct{}\n\n"
        "func (s *Server) Start(port int) error { return nil }\n\nfunc main() {}\n"
    ),
    "core/src/lib.rs": (
        "pub struct Ledger { total: i64 }\n"
        "impl Ledger {\n    pub fn add(&mut self, x: i64) { self.total += x; }\n}\n"
        "pub fn open() -> Ledger { Ledger { total: 0 } }\n"
    ),
}


def test_python_symbols_come_from_ast_with_their_signatures() -> None:
    text = (
        "class A(Base):\n    def m(self, x: int = 1) -> str:\n        return ''\n\n"
        "async def f(*a, **k): pass\n"
    )
    assert python_outline(text) == [
        "L1 class A(Base)",
        "  L2 def m(self, x: int=1) -> str",
        "L5 async def f(*a, **k)",
    ]
    assert python_outline("def broken(:\n") == ["(not parsed: SyntaxError on line 1)"]


def test_other_languages_are_outlined_with_tree_sitter() -> None:
    assert outline_languages() == ["python", "go", "javascript", "rust", "tsx", "typescript"]
    assert outline("web/app.ts", SOURCES["web/app.ts"]) == [
        "L1 interface Item { id: number }",
        "L2 class Cart {",
        "  L3 add(item: Item): void {}",
        "L5 function total(items: Item[]): number { return 0 }",
    ]
    assert outline("web/util.js", SOURCES["web/util.js"]) == [
        "L1 function slug(s) { return s }",
        "L2 class Box {",
        "  L3 open() {}",
    ]
    assert outline("cmd/main.go", SOURCES["cmd/main.go"]) == [
        "L3 Server struct{}",
        "L5 func (s *Server) Start(port int) error { return nil }",
        "L7 func main() {}",
    ]
    assert outline("core/src/lib.rs", SOURCES["core/src/lib.rs"]) == [
        "L1 pub struct Ledger { total: i64 }",
        "L2 impl Ledger {",
        "  L3 pub fn add(&mut self, x: i64) { self.total += x; }",
        "L5 pub fn open() -> Ledger { Ledger { total: 0 } }",
    ]
    assert outline("notes.txt", "text") is None


def test_the_issue_names_files_by_path_or_unique_name() -> None:
    paths = ["src/a/rules.py", "src/b/util.py", "src/c/util.py", "README.md"]
    issue = "Fix `rules.py` and src/b/util.py; see util.py and README.md. Also missing.py."
    assert named_paths(issue, paths) == ["src/a/rules.py", "src/b/util.py", "README.md"]


@pytest.fixture
def library(tmp_path: Path) -> Path:
    repo = lib.make_library(tmp_path / "ledger")
    for name, text in SOURCES.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    (repo / "logo.png").write_bytes(b"\x89PNG\0\0binary")
    lib.git(repo, "add", "-A")
    lib.git(repo, "commit", "-qm", "more languages")
    return repo


def test_the_map_fits_its_budget_and_says_what_it_left_out(library: Path) -> None:
    issue = f"{lib.ISSUE} The function is in rules.py; the README.md explains it."
    result = repository_map(
        GitWorkspace(library), "main", 6000, issue, allowed_paths=("src/", "tests/")
    )
    text = result.text
    assert len(text) <= 6000 and result.files == 10
    assert result.named == (lib.MODULE, "README.md")
    assert text.startswith(
        "Repository map of main (10 files)\nChanges are allowed only under: src/, tests/\n"
    )
    lines = len(lib.rules_module().splitlines())
    assert f"### {lib.MODULE} ({lines} lines; its outline, too large to show whole)\n" in text
    line = (
        lib.rules_module()
        .splitlines()
        .index("def apply_discount(total: float, percent: float) -> float:")
    )
    assert text.split("too large to show whole)\n")[1].startswith(
        f"L{line + 1} def apply_discount(total: float, percent: float) -> float\n"
        "(the symbols the issue names, above; all of them below)\n"
        "L6 def rule_0001(amount: int) -> int\nL13 def rule_0002"
    )
    assert "more symbols\n" in text
    assert "### README.md\n# ledger\n" in text
    assert "\n## Files\n" in text and "src/ledger/: __init__.py, rules.py\n" in text
    assert "(top): README.md, logo.png, pyproject.toml\n" in text
    assert "core/src/lib.rs\n  L1 pub struct Ledger { total: i64 }\n" in text
    assert result.outlined >= 3


def test_a_small_budget_leaves_symbols_out_and_counts_them(library: Path) -> None:
    result = repository_map(GitWorkspace(library), "main", 900)
    assert len(result.text) <= 900 and result.omitted > 0
    assert f"[symbols of {result.omitted} more files left out: the map's budget]" in result.text
