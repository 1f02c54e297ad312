"""A fast path for the few statements every text turn runs: compiled once per engine by
SQLAlchemy, run on the driver's cursor of the caller's SQLAlchemy connection.

``Connection.execute`` builds an execution context, a cursor result and its metadata, and fires
the connection's events for each statement: on a turn's four statements that machinery cost
more than SQLite's own work (≈ 0.1 ms a statement in the write thread, by phase timers in
``benchmarks/text_turn.py --openai``). Here SQLAlchemy still writes the SQL for the dialect and
converts every value with the column types' own processors (``TypeEngine.bind_processor`` and
``result_processor``: the encrypted columns, UTC date-times); only the execution is ours. The
transaction stays SQLAlchemy's (the statements run inside ``engine.begin()`` or
``store.db.reading``), and a driver error is raised as SQLAlchemy's own (an
``IntegrityError`` is still one).

Guarded by ``tests/integration/test_prepared.py``: every prepared statement against
``Connection.execute`` of the same statement, on SQLite and PostgreSQL. Statements with an
expanding ``IN`` list, or executed with ``RETURNING`` rows to read, are not supported (none of
the turn's are).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from weakref import WeakKeyDictionary

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement, Select
from sqlalchemy.sql.compiler import SQLCompiler

Processor = Callable[[Any], Any]


@dataclass(frozen=True)
class _Compiled:
    sql: str
    binds: tuple[tuple[str, Processor | None], ...]
    """Each parameter's name and its type's bind processor, in the order the SQL wants them."""
    defaults: Mapping[str, Any]
    """Values the statement carries (literals become parameters)."""
    positional: bool
    results: tuple[Processor | None, ...]


class Prepared:
    """``statement`` (with named ``bindparam``s) ready to run on a connection's driver."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: WeakKeyDictionary[Dialect, _Compiled] = WeakKeyDictionary()

    def rows(self, db: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """Run a ``SELECT``; its rows with every column converted by its type."""
        compiled = self._for(db.dialect)
        bound = _bind(compiled, params)
        fetched = self._run(db, compiled, lambda cursor, sql: cursor.execute(sql, bound))
        processors = compiled.results
        return [
            tuple(p(value) if p else value for p, value in zip(processors, row, strict=True))
            for row in fetched
        ]

    def run(self, db: Connection, params: Mapping[str, Any]) -> None:
        """Run a statement that returns no rows."""
        compiled = self._for(db.dialect)
        bound = _bind(compiled, params)
        self._run(db, compiled, lambda cursor, sql: cursor.execute(sql, bound))

    def run_many(self, db: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run a statement that returns no rows once per parameter set (``executemany``)."""
        compiled = self._for(db.dialect)
        bound = [_bind(compiled, row) for row in rows]
        self._run(db, compiled, lambda cursor, sql: cursor.executemany(sql, bound))

    def _run(
        self, db: Connection, compiled: _Compiled, call: Callable[[Any, str], Any]
    ) -> list[Any]:
        driver = db.connection.driver_connection
        assert driver is not None, "the connection is closed"
        dialect = db.dialect
        cursor = driver.cursor()
        try:
            call(cursor, compiled.sql)
            return list(cursor.fetchall()) if compiled.results else []
        except dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(
                compiled.sql,
                None,
                exc,
                dialect.loaded_dbapi.Error,
                hide_parameters=True,  # patients' data: as the engine (store.db.make_engine)
                dialect=dialect,
            ) from exc
        finally:
            cursor.close()

    def _for(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect)
        if compiled is None:
            compiled = self._compiled[dialect] = _compile(self.statement, dialect)
        return compiled


def _compile(statement: ClauseElement, dialect: Dialect) -> _Compiled:
    compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
    types = {name: bind.type for bind, name in compiled.bind_names.items()}
    if any(bind.expanding for bind in compiled.bind_names):
        raise ValueError("an expanding IN parameter cannot be prepared")
    positions = compiled.positiontup
    positional = positions is not None
    order = list(positions) if positions is not None else list(types)
    results: tuple[Processor | None, ...] = ()
    if isinstance(statement, Select):
        results = tuple(
            column.type.result_processor(dialect, None) for column in statement.selected_columns
        )
    return _Compiled(
        sql=compiled.string,
        binds=tuple((name, types[name].bind_processor(dialect)) for name in order),
        defaults={k: v for k, v in compiled.params.items() if v is not None},
        positional=positional,
        results=results,
    )


def _bind(compiled: _Compiled, params: Mapping[str, Any]) -> tuple[Any, ...] | dict[str, Any]:
    """The driver's parameters: every value through its type's processor, as SQLAlchemy does
    (``None`` included: the types decide what it becomes)."""
    converted: list[tuple[str, Any]] = []
    for name, processor in compiled.binds:
        if name in params:
            value = params[name]
        elif name in compiled.defaults:
            value = compiled.defaults[name]
        else:
            raise ValueError(f"no value for the parameter {name!r}")
        converted.append((name, processor(value) if processor is not None else value))
    if compiled.positional:
        return tuple(value for _, value in converted)
    return dict(converted)
