"""The encrypted fields of the schema, and one batched way to rewrite them (the 0009 migration
encrypts plaintext with it, key rotation re-encrypts with it).

Rows are read in primary-key order, a page at a time, on raw columns (no type processing), and
each page is written in its own transaction when an engine is given: a rewrite interrupted half
way keeps what it did, and running it again only touches what is still left.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection, Engine, MetaData

from voice_agent.store.types import EncryptedDate, EncryptedText

BATCH_SIZE = 500
_T = TypeVar("_T")

Transform = Callable[[str], str | None]
"""A stored value in, its replacement out (``None``: leave the value as it is)."""


@dataclass(frozen=True)
class EncryptedTable:
    name: str
    primary_key: str
    columns: tuple[str, ...]


def encrypted_tables(metadata: MetaData) -> list[EncryptedTable]:
    """Every table with encrypted columns, found from the column types (so a new encrypted
    column is rotated without anyone remembering to list it)."""
    found: list[EncryptedTable] = []
    for table in sorted(metadata.tables.values(), key=lambda t: t.name):
        columns = tuple(
            c.name for c in table.columns if isinstance(c.type, EncryptedText | EncryptedDate)
        )
        if not columns:
            continue
        (primary_key,) = [c.name for c in table.primary_key.columns]
        found.append(EncryptedTable(table.name, primary_key, columns))
    return found


@dataclass
class RewriteReport:
    rows_read: int = 0
    values_changed: int = 0


def rewrite(
    db: Engine | Connection,
    table: EncryptedTable,
    transform: Transform,
    *,
    batch_size: int = BATCH_SIZE,
    report: RewriteReport | None = None,
    where: sa.ColumnElement[bool] | None = None,
) -> RewriteReport:
    """Apply ``transform`` to every non-null value of the table's columns, page by page
    (only rows matching ``where``, a condition on plain columns, when given)."""
    report = report or RewriteReport()
    raw = sa.table(table.name, sa.column(table.primary_key), *map(sa.column, table.columns))
    pk = raw.c[table.primary_key]
    last: object = None
    while True:
        query = sa.select(raw).order_by(pk).limit(batch_size)
        if where is not None:
            query = query.where(where)
        if last is not None:
            query = query.where(pk > last)
        page = _run(db, functools.partial(_read_page, query=query))
        if not page:
            return report
        updates = list(_changes(page, table, transform, report))
        if updates:
            _run(db, functools.partial(_write, raw=raw, table=table, rows=updates))
        last = page[-1][table.primary_key]


def _changes(
    page: Iterable[sa.RowMapping],
    table: EncryptedTable,
    transform: Transform,
    report: RewriteReport,
) -> Iterable[dict[str, object]]:
    for row in page:
        report.rows_read += 1
        changed: dict[str, object] = {}
        for column in table.columns:
            value = row[column]
            if value is None:
                continue
            new = transform(str(value))
            if new is not None and new != value:
                changed[column] = new
        if changed:
            report.values_changed += len(changed)
            changed["_pk"] = row[table.primary_key]
            yield changed


def _read_page(connection: Connection, *, query: sa.Select) -> list[sa.RowMapping]:
    return list(connection.execute(query).mappings())


def _write(
    connection: Connection,
    raw: sa.TableClause,
    table: EncryptedTable,
    rows: list[dict[str, object]],
) -> None:
    pk = raw.c[table.primary_key]
    for row in rows:
        values = {key: value for key, value in row.items() if key != "_pk"}
        connection.execute(sa.update(raw).where(pk == row["_pk"]).values(**values))


def _run(db: Engine | Connection, work: Callable[[Connection], _T]) -> _T:
    """On an engine, each call is its own transaction (resumable); on a connection, the
    caller's transaction (a migration is all or nothing)."""
    if isinstance(db, Connection):
        return work(db)
    with db.begin() as connection:
        return work(connection)
