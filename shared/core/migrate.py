"""Run Alembic from code: ``plumbline run`` and ``plumbline migrate`` upgrade to head first.

The migration scripts live in ``migrations/`` next to the ``shared`` package (the repository
root). An installed, non-editable copy of the package has no ``migrations`` beside it; then
the current directory's ``migrations/`` is used (the Docker image runs from the source tree).
"""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Index, Table
from sqlalchemy.sql.schema import SchemaItem

from shared.models.intake import is_decision_partition

_PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent


def migrations_dir() -> Path:
    """The ``migrations`` directory: next to the package, else in the current directory."""
    for root in (_PROJECT_ROOT, Path.cwd()):
        candidate = root / "migrations"
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(
        f"no migrations/env.py next to {_PROJECT_ROOT} or in {Path.cwd()}; "
        "run from the Plumbline source tree"
    )


def include_object(
    item: SchemaItem, name: str | None, type_: str, reflected: bool, compare_to: SchemaItem | None
) -> bool:
    """Whether autogenerate compares ``item`` with the models: not the decisions' monthly
    partitions and their indexes, which the report worker creates and drops at run time
    (the model is their partitioned parent)."""
    if not reflected:
        return True
    if isinstance(item, Table):
        return not is_decision_partition(item.name)
    if isinstance(item, Index) and item.table is not None:
        return not is_decision_partition(item.table.name)
    return True


def alembic_config(database_url: str) -> Config:
    """An Alembic config for ``database_url``, using alembic.ini when it is present."""
    scripts = migrations_dir()
    ini = scripts.parent / "alembic.ini"
    config = Config(str(ini)) if ini.is_file() else Config()
    config.set_main_option("script_location", str(scripts))
    # The value goes through ConfigParser interpolation: a literal % must be doubled.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    # When the process already set up logging (JSON logs), alembic.ini must not replace it.
    config.attributes["configure_logger"] = not logging.getLogger().handlers
    return config


def upgrade_to_head(database_url: str) -> None:
    """Apply every migration not yet applied. Synchronous: call it outside an event loop."""
    command.upgrade(alembic_config(database_url), "heads")


def next_revision_id() -> str:
    """The next id in the ``0001``, ``0002``... sequence the migration files follow."""
    numbers = [
        int(path.name[:4])
        for path in (migrations_dir() / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")
    ]
    return f"{max(numbers, default=0) + 1:04d}"


def make_revision(database_url: str, message: str, rev_id: str | None = None) -> None:
    """Autogenerate a migration by comparing the models with the database at ``database_url``.

    The revision id defaults to the next number of the sequence, so files sort in order.
    """
    command.revision(
        alembic_config(database_url),
        message=message,
        autogenerate=True,
        rev_id=rev_id or next_revision_id(),
    )
