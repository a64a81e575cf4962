"""core/ stays readable: no class over 300 lines or 25 methods (an ast walk, as tests/explorer/test_explorer_size.py
does for explorer/). The Trainer (487 lines, 26 methods) and ConditionalVAE (28 methods) were split to get here
(issue 24); nothing is listed as an exception."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLASS_LINES, CLASS_METHODS = 300, 25


def _class_sizes() -> dict[str, tuple[int, int]]:
    """'core/path.py::Outer.Inner' -> (lines, methods) of every class in core/, nested ones included."""
    sizes = {}
    for path in sorted((ROOT / "core").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                methods = sum(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) for n in node.body)
                sizes[f"{rel}::{node.name}"] = (node.end_lineno - node.lineno + 1, methods)
    return sizes


def test_no_class_in_core_is_over_300_lines_or_25_methods():
    sizes = _class_sizes()
    assert len(sizes) > 100 and "core/training/trainer.py::Trainer" in sizes   # the walk found the package
    too_big = [f"class {name}: {lines} lines, {methods} methods" for name, (lines, methods) in sizes.items()
               if lines > CLASS_LINES or methods > CLASS_METHODS]
    assert not too_big, "over the limits (split it into collaborators with one concern each):\n" + "\n".join(too_big)
