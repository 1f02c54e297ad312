"""Clinic data as versions: who changed what, when; edits validated by the file's own model;
any version exported back to YAML.

Every save (``voice-agent clinic load``, a console form) is a new ``clinic_version`` row with the
whole document, its author and a one-line-per-change summary against the version before; the
newest row is the clinic in force. An edit replaces one section of the document and is validated
by the same ``Clinic`` model as the YAML file, so a form can save nothing the file could not say.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any

import yaml
from pydantic import ValidationError
from sqlalchemy import Engine, func, select
from sqlmodel import col

from voice_agent.clinic.model import Clinic
from voice_agent.store.db import transaction
from voice_agent.store.tables import ClinicVersion

MAX_CHANGES = 40
"""A summary lists at most this many changes (a whole new file says how many more)."""

SECTIONS = (
    "clinic",
    "doctors",
    "services",
    "insurances",
    "hospitals",
    "closures",
    "periods",
)
"""Top-level parts of the document an edit may replace (``clinic``: the scalar fields)."""


@dataclass(frozen=True)
class VersionInfo:
    id: int
    loaded_at: datetime
    source: str
    author_id: int | None
    summary: str | None


@dataclass(frozen=True)
class Problem:
    """One thing the model refused: pydantic's error ``type`` and ``ctx`` let the console say
    it in the user's language; ``message`` is the model's own words."""

    type: str
    message: str
    ctx: dict[str, Any]


class ClinicEditError(ValueError):
    """An edit the model refuses: ``fields`` maps a field path (``services.2.private_price``)
    to its reason; ``general`` holds what belongs to no single field (a broken reference)."""

    def __init__(
        self,
        fields: dict[str, str],
        general: list[str],
        problems: dict[str, Problem] | None = None,
    ) -> None:
        self.fields = fields
        self.general = general
        self.problems = problems or {}
        """By field path, as ``fields``."""
        super().__init__("; ".join([*(f"{k}: {v}" for k, v in fields.items()), *general]))


# Editing ------------------------------------------------------------------------------------


def document(clinic: Clinic, *, defaults: bool = True) -> dict[str, Any]:
    """The clinic as the plain data of its YAML file (lists, numbers, ``HH:MM`` times);
    ``defaults=False`` leaves out every value that equals the model's default."""
    data: dict[str, Any] = _plain(clinic.model_dump(mode="python", exclude_defaults=not defaults))
    return data


def with_section(clinic: Clinic, section: str, value: Any) -> Clinic:
    """The clinic with one section replaced, validated as a whole (references included)."""
    if section not in SECTIONS:
        raise ClinicEditError({}, [f"unknown section {section!r}"])
    data = document(clinic)
    if section == "clinic":
        if not isinstance(value, dict):
            raise ClinicEditError({}, ["expected the clinic's fields"])
        data |= value
    else:
        data[section] = value
    return validate(data)


def validate(data: dict[str, Any]) -> Clinic:
    try:
        return Clinic.model_validate(data)
    except ValidationError as error:
        fields: dict[str, str] = {}
        problems: dict[str, Problem] = {}
        general: list[str] = []
        for problem in error.errors():
            message = str(problem["msg"]).removeprefix("Value error, ")
            location = ".".join(str(part) for part in problem["loc"])
            if location:
                fields.setdefault(location, message)
                context = {k: str(v) for k, v in (problem.get("ctx") or {}).items()}
                problems.setdefault(location, Problem(problem["type"], message, context))
            else:
                general.append(message)
        raise ClinicEditError(fields, general, problems) from None


# Versions -----------------------------------------------------------------------------------


def save_version(
    engine: Engine, clinic: Clinic, *, source: str, author_id: int | None = None
) -> VersionInfo:
    """Store the clinic as the new version in force, with what changed since the last one."""
    with transaction(engine) as session:
        previous = session.execute(
            select(col(ClinicVersion.content)).order_by(col(ClinicVersion.id).desc()).limit(1)
        ).scalar_one_or_none()
        before = Clinic.model_validate(json.loads(previous)) if previous else None
        summary = "\n".join(changes(before, clinic)) if before is not None else None
        row = ClinicVersion(
            source=source[:500],
            content=clinic.model_dump_json(),
            author_id=author_id,
            summary=summary,
        )
        session.add(row)
        session.flush()
        assert row.id is not None
        return VersionInfo(row.id, row.loaded_at, row.source, row.author_id, row.summary)


def versions(engine: Engine, limit: int = 50) -> list[VersionInfo]:
    """Newest first."""
    query = (
        select(
            col(ClinicVersion.id),
            col(ClinicVersion.loaded_at),
            col(ClinicVersion.source),
            col(ClinicVersion.author_id),
            col(ClinicVersion.summary),
        )
        .order_by(col(ClinicVersion.id).desc())
        .limit(limit)
    )
    with transaction(engine) as session:
        return [VersionInfo(*row) for row in session.execute(query)]


def version(engine: Engine, version_id: int | None = None) -> tuple[VersionInfo, Clinic] | None:
    """One version (the one in force when ``version_id`` is None) and its clinic."""
    query = select(ClinicVersion)
    if version_id is None:
        query = query.order_by(col(ClinicVersion.id).desc()).limit(1)
    else:
        query = query.where(col(ClinicVersion.id) == version_id)
    with transaction(engine) as session:
        row = session.execute(query).scalar_one_or_none()
        if row is None or row.id is None:
            return None
        info = VersionInfo(row.id, row.loaded_at, row.source, row.author_id, row.summary)
        return info, Clinic.model_validate(json.loads(row.content))


def latest_version_id(engine: Engine) -> int | None:
    """One indexed read: a process compares it with the version it holds."""
    with transaction(engine) as session:
        found = session.execute(select(func.max(ClinicVersion.id))).scalar()
    return int(found) if found is not None else None


def export_yaml(clinic: Clinic) -> str:
    """The clinic as a YAML file that ``voice-agent clinic load`` reads back to the same clinic."""
    header = f"# {clinic.name}: exported clinic data (voice-agent clinic export)\n"
    return header + yaml.safe_dump(
        document(clinic, defaults=False), allow_unicode=True, sort_keys=False, width=100
    )


# What changed -------------------------------------------------------------------------------


def changes(before: Clinic, after: Clinic) -> list[str]:
    """One line per changed value, by path (items of a list by their id): ``services[consulta-
    cardio].private_price: 350.00 → 380.00``, ``doctors[dr-x]: added``."""
    found: list[str] = []
    _diff(document(before), document(after), "", found)
    if len(found) > MAX_CHANGES:
        extra = len(found) - MAX_CHANGES
        found = [*found[:MAX_CHANGES], f"… and {extra} more"]
    return found


def _diff(old: Any, new: Any, path: str, found: list[str]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            child = f"{path}.{key}" if path else str(key)
            if key not in new:
                found.append(f"{child}: removed")
            elif key not in old:
                found.append(f"{child}: added {_short(new[key])}")
            else:
                _diff(old[key], new[key], child, found)
        return
    if isinstance(old, list) and isinstance(new, list) and _by_id(old) and _by_id(new):
        olds = {item["id"]: item for item in old}
        news = {item["id"]: item for item in new}
        for key in [*olds, *(k for k in news if k not in olds)]:
            child = f"{path}[{key}]"
            if key not in news:
                found.append(f"{child}: removed")
            elif key not in olds:
                found.append(f"{child}: added")
            else:
                _diff(olds[key], news[key], child, found)
        return
    found.append(f"{path}: {_short(old)} → {_short(new)}")


def _by_id(items: list[Any]) -> bool:
    return all(isinstance(item, dict) and "id" in item for item in items)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 80 else text[:77] + "…"


def _plain(value: Any) -> Any:
    """A model dump as YAML-friendly values: decimals as numbers, times as ``HH:MM``."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, date):
        return value.isoformat()
    return value
