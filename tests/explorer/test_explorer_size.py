"""explorer/ stays readable: no class over 300 lines or 25 methods, no function over 60 lines (an ast walk).

The classes and functions over the limits when this test was written (issue 21) are listed with their size then:
each may only shrink (and leaves the list once within the limits); anything new must be within them."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLASS_LINES, CLASS_METHODS, FUNCTION_LINES = 300, 25, 60

# name -> (lines, methods) for classes, lines for functions: today's size, a ceiling until they are split
OVER_CLASSES = {
}
OVER_FUNCTIONS = {
}


def _sizes() -> tuple[dict[str, tuple[int, int]], dict[str, int]]:
    classes, functions = {}, {}
    for path in sorted((ROOT / "explorer").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()

        def visit(node: ast.AST, prefix: str, rel: str = rel) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef):
                    methods = sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in child.body)
                    classes[f"{rel}::{prefix}{child.name}"] = (child.end_lineno - child.lineno + 1, methods)
                    visit(child, f"{prefix}{child.name}.")
                elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    functions[f"{rel}::{prefix}{child.name}"] = child.end_lineno - child.lineno + 1
                    visit(child, f"{prefix}{child.name}.")
                else:
                    visit(child, prefix)

        visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return classes, functions


def test_no_class_or_function_in_explorer_grows_past_the_limits():
    classes, functions = _sizes()
    assert len(classes) > 40 and len(functions) > 300      # the walk found the package
    too_big = []
    for name, (lines, methods) in classes.items():
        max_lines, max_methods = OVER_CLASSES.get(name, (CLASS_LINES, CLASS_METHODS))
        if lines > max(max_lines, CLASS_LINES) or methods > max(max_methods, CLASS_METHODS):
            too_big.append(f"class {name}: {lines} lines, {methods} methods")
    for name, lines in functions.items():
        if lines > max(OVER_FUNCTIONS.get(name, FUNCTION_LINES), FUNCTION_LINES):
            too_big.append(f"function {name}: {lines} lines")
    assert not too_big, "over the limits (split it into smaller views / helpers):\n" + "\n".join(too_big)


def test_the_list_of_classes_over_the_limits_only_shrinks():
    """A listed class that was split (or a function that was shortened) comes off the list: its ceiling would
    otherwise let it grow back."""
    classes, functions = _sizes()
    stale = [n for n, (lines, methods) in ((n, classes.get(n, (0, 0))) for n in OVER_CLASSES)
             if lines <= CLASS_LINES and methods <= CLASS_METHODS]
    stale += [n for n in OVER_FUNCTIONS if functions.get(n, 0) <= FUNCTION_LINES]
    assert not stale, f"within the limits now: remove from the lists: {stale}"
