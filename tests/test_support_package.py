"""Test helpers have one home, ``tests/support/``.

Found on the landed code: ``assert_problem`` was defined five times, and seven test modules
imported helpers from other test modules (importing a test module also collects its tests
and fixtures into the importer's namespace, and couples unrelated suites).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent
# Defined once, in tests/support/; a copy elsewhere drifts from it.
SHARED_HELPERS = {"assert_problem", "make_audits", "auditor", "create_quiz", "new_case"}


def _modules() -> list[Path]:
    return sorted(path for path in TESTS.rglob("*.py") if "__pycache__" not in path.parts)


def test_no_test_module_imports_another() -> None:
    offenders = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            offenders += [
                f"{path.relative_to(TESTS)}: {name}"
                for name in names
                if name.startswith("tests.test_")
            ]
    assert offenders == [], "move the helper to tests/support/"


def test_shared_helpers_are_defined_only_in_the_support_package() -> None:
    copies = []
    for path in _modules():
        if path.parent.name == "support":
            continue
        functions = [
            node
            for node in ast.parse(path.read_text(), str(path)).body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        copies += [
            f"{path.relative_to(TESTS)}: {f.name}" for f in functions if f.name in SHARED_HELPERS
        ]
    assert copies == [], "import it from tests/support/"
