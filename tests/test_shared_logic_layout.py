"""Logic the API and the workers share lives once, in ``shared/``: checked on the source.

Each rule names the module that owns a piece of domain logic; a second copy anywhere else
(the way the disagreement close, golden accuracy and job status were once written again in
the report worker) fails here, whatever the tests of behaviour say.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKERS = ("services/report_worker", "services/notifier")


def modules(*folders: str) -> Iterator[tuple[str, ast.Module]]:
    """``(path relative to the repository, parsed module)`` of every module under
    ``folders``."""
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), ast.parse(path.read_text(), str(path))


def names_used(tree: ast.AST) -> set[str]:
    """Every name a module refers to or imports."""
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            used.update(alias.name for alias in node.names)
    return used


def calls_to(tree: ast.AST, name: str) -> list[int]:
    """Lines calling ``name(...)`` or ``something.name(...)``."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if called == name:
                lines.append(node.lineno)
    return lines


@pytest.mark.no_db
def test_disagreement_state_changes_happen_in_the_lifecycle_module_only() -> None:
    # Creating a disagreement or a history row is a state change: one module makes them.
    owner = "shared/disagreements/lifecycle.py"
    offenders = [
        f"{path}:{line}"
        for path, tree in modules("shared", "services")
        if path != owner and not path.startswith("shared/models/")
        for name in ("Disagreement", "DisagreementChange")
        for line in calls_to(tree, name)
    ]
    assert offenders == []


@pytest.mark.no_db
def test_delivery_state_changes_happen_in_the_delivery_lifecycle_only() -> None:
    # Claim, record, dead-letter (the notifier) and redrive (the API) move one state machine.
    owner = "shared/deliveries/lifecycle.py"
    offenders = [
        f"{path}:{node.lineno}"
        for path, tree in modules("shared", "services")
        if path != owner
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Attribute)
        and target.attr in ("status", "attempts", "next_attempt_at")
        and isinstance(target.value, ast.Name)
        and target.value.id == "delivery"
    ]
    assert offenders == []


@pytest.mark.no_db
def test_golden_accuracy_is_counted_in_shared_golden_only() -> None:
    offenders = [
        path
        for path, tree in modules("shared", "services")
        if "GoldenVerdict" in names_used(tree)
        and not path.startswith(("shared/golden/", "shared/models/"))
    ]
    assert offenders == []


@pytest.mark.no_db
def test_workers_change_job_rows_through_shared_background_jobs() -> None:
    offenders = [path for path, tree in modules(*WORKERS) if "BackgroundJob" in names_used(tree)]
    assert offenders == []


@pytest.mark.no_db
def test_workers_query_no_model_whose_logic_lives_in_shared() -> None:
    # The definitions (what is overdue, expired, matched) are in shared/<domain>/; a worker
    # job that names these models is writing a second copy of one.
    owned = {"Disagreement", "DisagreementChange", "GoldenVerdict", "TrainingItemProgress"}
    offenders = {
        path: sorted(owned & names_used(tree))
        for path, tree in modules(*WORKERS)
        if owned & names_used(tree)
    }
    assert offenders == {}


@pytest.mark.no_db
def test_worker_jobs_get_a_typed_state_not_the_arq_context() -> None:
    # ctx["..."] is read in one place (shared/core/queue.py hands jobs their state; the
    # start-up hooks install it through shared/core/workers.py).
    offenders = [
        f"{path}:{node.lineno}"
        for path, tree in modules(*WORKERS)
        for node in ast.walk(tree)
        if isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == "ctx"
    ]
    assert offenders == []


@pytest.mark.no_db
def test_worker_modules_read_no_settings_when_imported() -> None:
    # Settings are read when the worker starts (tests and `plumbline` hand theirs in); a
    # module-level or class-level get_settings() freezes whatever the environment said then.
    offenders = []
    for path, tree in modules(*WORKERS):
        bodies = [tree.body] + [node.body for node in tree.body if isinstance(node, ast.ClassDef)]
        for body in bodies:
            for statement in body:
                if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                offenders += [f"{path}:{line}" for line in calls_to(statement, "get_settings")]
    assert offenders == []


@pytest.mark.no_db
def test_only_the_queue_module_enqueues() -> None:
    offenders = [
        f"{path}:{line}"
        for path, tree in modules("shared", "services")
        if path != "shared/core/queue.py"
        for line in calls_to(tree, "enqueue_job")
    ]
    assert offenders == []


@pytest.mark.no_db
def test_notifier_fan_out_renders_through_the_channel_adapters() -> None:
    # Adding a channel kind touches its adapter and its templates: fan-out and delivery
    # never choose a renderer themselves.
    imported = {
        node.module
        for path, tree in modules("services/notifier")
        if not path.startswith(("services/notifier/channels/", "services/notifier/templates/"))
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not {module for module in imported if module.startswith("services.notifier.templates")}
