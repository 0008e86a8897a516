"""Keyset pagination: one object owns a list's order, its position filter and its cursor.

A list declares its key once, as the SQLAlchemy columns it is ordered by (the last one unique,
so the order is total), all ascending or all descending::

    AUDIT_ORDER = Keyset(Audit.day, Audit.id, descending=True)

    query = AUDIT_ORDER.apply(select(Audit).where(...), filters)   # ORDER BY, WHERE, LIMIT
    return AUDIT_ORDER.page([audit_read(row) for row in rows], filters)

``apply`` orders by the key, keeps the rows after the cursor's position with one row
comparison (``(day, id) < (:day, :id)``, which PostgreSQL answers from an index on the key)
and fetches ``limit + 1`` rows: the extra one says another page exists, without a count.
``page`` cuts that fetch to the page and makes the cursor from its last item's key
attributes (named like the columns).

The cursor is URL-safe base64 of a JSON array holding the key's values, each typed after its
column's Python type. A cursor we did not make is a 400 problem, whatever it holds: it is
decoded strictly (exact length, the JSON type each column needs, integers in the column's
range, no NUL in text, times with an offset that stay inside the calendar in UTC) before any
of it reaches the database, so no forged value can make a query fail.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Generic, Protocol, TypeVar

import orjson
from sqlalchemy import BigInteger, ColumnElement, Select, SmallInteger, literal, tuple_
from sqlalchemy.orm import QueryableAttribute

from shared.core.errors import BadRequest

RowT = TypeVar("RowT")
SelectT = TypeVar("SelectT", bound="Select[*tuple[Any, ...]]")

# Long enough for the widest key a list has (a time, a UUID and two 128-character ids, each
# character up to four bytes of UTF-8), short enough that decoding one costs nothing.
MAX_CURSOR_LENGTH = 2048

KeyKind = type[str] | type[int] | type[uuid.UUID] | type[datetime] | type[date]
_KINDS: tuple[KeyKind, ...] = (datetime, date, uuid.UUID, int, str)  # datetime before date

_INVALID = "cursor is not valid"


class PageRequest(Protocol):
    """What a list is asked for: a page size and the cursor after the previous page."""

    @property
    def limit(self) -> int: ...

    @property
    def cursor(self) -> str | None: ...


@dataclass(frozen=True)
class KeysetPage(Generic[RowT]):
    """One page of a list and the cursor of the next (None: this is the last page)."""

    items: list[RowT]
    next_cursor: str | None


@dataclass(frozen=True)
class KeyColumn:
    """One column of a key: the SQL expression, the attribute naming it on a row, its type."""

    expression: ColumnElement[Any]
    name: str
    kind: KeyKind
    int_bits: int = 64
    aware: bool = True

    @classmethod
    def of(cls, expression: ColumnElement[Any] | QueryableAttribute[Any]) -> KeyColumn:
        """The key column for ``expression``; its Python type comes from its SQL type."""
        name = getattr(expression, "key", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"a key column needs a name (label it): {expression!r}")
        sql_type = expression.type
        try:
            python_type = sql_type.python_type
        except NotImplementedError as exc:
            raise TypeError(f"key column {name} has no Python type: {sql_type!r}") from exc
        kind = next((k for k in _KINDS if issubclass(python_type, k)), None)
        if kind is None:
            raise TypeError(f"key column {name}: {python_type.__name__} is not a key type")
        bits = 16 if isinstance(sql_type, SmallInteger) else 32
        if isinstance(sql_type, BigInteger):
            bits = 64
        column: ColumnElement[Any] = (
            expression.__clause_element__()
            if isinstance(expression, QueryableAttribute)
            else expression
        )
        return cls(
            expression=column,
            name=name,
            kind=kind,
            int_bits=bits,
            aware=bool(getattr(sql_type, "timezone", True)),
        )

    def to_json(self, value: object) -> object:
        """The JSON value of a row's key value; a value of the wrong type is a bug (TypeError)."""
        if self.kind is datetime and isinstance(value, datetime):
            if (value.utcoffset() is not None) != self.aware:
                raise TypeError(f"key {self.name}: {value!r} does not match the column's zone")
            return (value.astimezone(UTC) if self.aware else value).isoformat()
        if self.kind is date and type(value) is date:
            return value.isoformat()
        if self.kind is uuid.UUID and isinstance(value, uuid.UUID):
            return str(value)
        if self.kind is int and type(value) is int:
            return value
        if self.kind is str and isinstance(value, str):
            return value
        raise TypeError(f"key {self.name} is a {self.kind.__name__}, not {value!r}")

    def from_json(self, value: object) -> object:
        """The key value a cursor holds; anything we would not have written is a 400."""
        if self.kind is int:
            limit = 2 ** (self.int_bits - 1)
            if type(value) is int and -limit <= value < limit:
                return value
            raise BadRequest(_INVALID)
        if not isinstance(value, str) or "\x00" in value:
            raise BadRequest(_INVALID)
        try:
            if self.kind is str:
                value.encode()  # a lone surrogate cannot be sent to PostgreSQL
                return value
            if self.kind is uuid.UUID:
                return uuid.UUID(value)
            if self.kind is date:
                return date.fromisoformat(value)
            moment = datetime.fromisoformat(value)
            if (moment.utcoffset() is not None) != self.aware:
                raise BadRequest(_INVALID)
            # In range as written is not enough: asyncpg sends the time in UTC.
            return moment.astimezone(UTC) if self.aware else moment
        except (ValueError, OverflowError) as exc:
            raise BadRequest(_INVALID) from exc


class Keyset:
    """A list's key: its order, the filter after a position, and the cursor for that position.

    Declared with the columns the list is ordered by, in order, the last one unique; all
    ascending, or all descending (a row comparison needs one direction). A computed column
    is given labelled (``expression.label("name")``) with a SQL type.
    """

    def __init__(
        self,
        *columns: ColumnElement[Any] | QueryableAttribute[Any],
        descending: bool = False,
    ) -> None:
        if not columns:
            raise TypeError("a keyset needs at least one column")
        self.columns = tuple(KeyColumn.of(column) for column in columns)
        self.descending = descending

    def apply(self, query: SelectT, page: PageRequest) -> SelectT:
        """``query`` ordered by the key, after the cursor's position, ``page.limit + 1`` rows.

        A cursor we did not make is a 400 (``BadRequest``), raised before anything runs.
        """
        expressions = [column.expression for column in self.columns]
        if page.cursor is not None:
            position = self.decode(page.cursor)
            values = [
                literal(value, type_=column.expression.type)
                for column, value in zip(self.columns, position, strict=True)
            ]
            if len(expressions) == 1:
                left: ColumnElement[Any] = expressions[0]
                right: ColumnElement[Any] = values[0]
            else:
                left, right = tuple_(*expressions), tuple_(*values)
            query = query.where(left < right if self.descending else left > right)
        order = [e.desc() if self.descending else e.asc() for e in expressions]
        return query.order_by(*order).limit(page.limit + 1)

    def page(
        self,
        rows: Sequence[RowT],
        page: PageRequest,
        *,
        key: Callable[[RowT], Sequence[object]] | None = None,
    ) -> KeysetPage[RowT]:
        """Cut a fetch made through ``apply`` to the page, with the cursor after its last row.

        A row's key is read from its attributes named like the key columns, or by ``key``.
        """
        items = list(rows[: page.limit])
        if len(rows) <= page.limit or not items:
            return KeysetPage(items=items, next_cursor=None)
        last = items[-1]
        values = key(last) if key else [getattr(last, column.name) for column in self.columns]
        return KeysetPage(items=items, next_cursor=self.encode(values))

    def encode(self, values: Sequence[object]) -> str:
        """The cursor for the position of a row whose key is ``values``."""
        if len(values) != len(self.columns):
            raise TypeError(f"a key of {len(self.columns)} values, not {len(values)}")
        position = [column.to_json(v) for column, v in zip(self.columns, values, strict=True)]
        return base64.urlsafe_b64encode(orjson.dumps(position)).decode().rstrip("=")

    def decode(self, cursor: str) -> tuple[object, ...]:
        """The key values a cursor stands for, typed per column; one we did not make is a 400."""
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise BadRequest(_INVALID)
        try:
            padded = cursor.encode("ascii") + b"=" * (-len(cursor) % 4)
            position = orjson.loads(base64.b64decode(padded, altchars=b"-_", validate=True))
        except (ValueError, orjson.JSONDecodeError) as exc:  # binascii.Error is a ValueError
            raise BadRequest(_INVALID) from exc
        if not isinstance(position, list) or len(position) != len(self.columns):
            raise BadRequest(_INVALID)
        return tuple(
            column.from_json(value) for column, value in zip(self.columns, position, strict=True)
        )
