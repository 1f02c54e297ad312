"""Clinic data as web forms, section by section, and back: the fields of a form are named by
their path in the clinic document (``services.2.private_price``), which is also where the
``Clinic`` model reports a problem, so each error is shown beside its field.

Pure: the console renders ``Form`` and hands the posted fields back to ``apply``, which returns
the whole document with the section replaced; ``versions.validate`` decides. Values stay text
here (the model parses ``"450.00"``, ``"30"``, ``"2026-12-24"`` and ``"08:00"`` itself); only the
shapes are built: lists from comma-separated words, maps from ``key: value`` lines, a day's
working hours from ``08:00-17:00 (12:00-13:30) @hospital; …``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from voice_agent.clinic.model import Weekday

TEXT, NUMBER, LIST, MAP, FLAG, LONG, DAY = "text", "number", "list", "map", "flag", "long", "day"


@dataclass(frozen=True)
class FormSpec:
    """What one section shows: which list of the document, which fields of each item."""

    key: str
    """The URL and i18n name of the section (``holidays``)."""
    path: str
    """The document's list (``closures``)."""
    fields: tuple[tuple[str, str], ...]
    """(field path inside an item, kind); ``names.*`` expands to one field per language."""
    addable: bool = False
    removable: bool = False
    title: str = "id"
    """The item field shown as its heading."""


SPECS: dict[str, FormSpec] = {
    spec.key: spec
    for spec in (
        FormSpec(
            "doctors",
            "doctors",
            (
                ("name", TEXT),
                ("title.*", TEXT),
                ("specialties", LIST),
                ("services", LIST),
                ("qualification", NUMBER),
                ("slot_minutes", NUMBER),
                ("hospitals", LIST),
                ("languages", LIST),
                ("prices", MAP),
                ("calendar_id", TEXT),
            ),
        ),
        FormSpec(
            "services",
            "services",
            (
                ("names.*", TEXT),
                ("specialty", TEXT),
                ("duration_minutes", NUMBER),
                ("private_price", NUMBER),
                ("min_qualification", NUMBER),
                ("synonyms.*", LIST),
            ),
        ),
        FormSpec(
            "insurances",
            "insurances",
            (
                ("id", TEXT),
                ("name", TEXT),
                ("synonyms", LIST),
                ("doctors", LIST),
                ("services", LIST),
            ),
            addable=True,
            removable=True,
            title="name",
        ),
        FormSpec(
            "hospitals",
            "hospitals",
            (("id", TEXT), ("name", TEXT), ("address", TEXT), ("phone", TEXT)),
            addable=True,
            removable=True,
            title="name",
        ),
        FormSpec(
            "holidays",
            "closures",
            (("start", TEXT), ("end", TEXT), ("reason", TEXT), ("doctors", LIST)),
            addable=True,
            removable=True,
            title="reason",
        ),
    )
}
EDITABLE_IDS = frozenset({"insurances", "hospitals"})
"""Sections whose new items take an id; an existing item's id is never edited (appointments
and other sections point at it)."""
SECTIONS = (*SPECS, "coverage", "hours")


@dataclass
class Field:
    name: str
    """The input's name: its path in the document."""
    label: str
    """The i18n key tail (``private_price``, ``names``) …"""
    kind: str
    value: str
    suffix: str = ""
    """… and what it is for (a language, an insurance, a weekday)."""
    readonly: bool = False
    shown: str = ""
    """``suffix`` in words, filled by the page (a language's or an insurance's name)."""


@dataclass
class Item:
    index: str
    """The item's position in the list, or ``new``."""
    title: str
    fields: list[Field] = field(default_factory=list)
    removable: bool = False


@dataclass
class Form:
    section: str
    items: list[Item]
    columns: list[str] = field(default_factory=list)
    """The coverage grid's insurances, the hours' weekdays."""


class FormError(ValueError):
    """A field that cannot be read at all (a day's hours that are not ``HH:MM-HH:MM``)."""

    def __init__(self, fields: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


# Building forms -----------------------------------------------------------------------------


def build(section: str, doc: dict[str, Any], languages: list[str]) -> Form:
    if section == "coverage":
        return _coverage_form(doc, languages)
    if section == "hours":
        return _hours_form(doc, languages)
    spec = SPECS[section]
    items = [
        _item(spec, str(i), item, languages, new=False)
        for i, item in enumerate(doc.get(spec.path) or [])
    ]
    if spec.addable:
        items.append(_item(spec, "new", {}, languages, new=True))
    return Form(section, items)


def _item(
    spec: FormSpec, index: str, item: dict[str, Any], languages: list[str], *, new: bool
) -> Item:
    prefix = f"{spec.path}.{index}"
    fields: list[Field] = []
    for path, kind in spec.fields:
        if path.endswith(".*"):
            base = path[:-2]
            values = item.get(base) or {}
            for language in _keys(values, languages):
                fields.append(
                    Field(
                        f"{prefix}.{base}.{language}",
                        base,
                        kind,
                        _show(values.get(language), kind),
                        language,
                    )
                )
            continue
        readonly = path == "id" and not new
        fields.append(
            Field(f"{prefix}.{path}", path, kind, _show(item.get(path), kind), "", readonly)
        )
    title = _title(spec, item, languages)
    return Item(index, title, fields, removable=spec.removable and not new)


def _title(spec: FormSpec, item: dict[str, Any], languages: list[str]) -> str:
    """An item's heading: its name in the clinic's language, with its code."""
    shown = item.get(spec.title)
    if spec.key == "services":
        names = item.get("names") or {}
        shown = next((names[lang] for lang in languages if lang in names), None)
    elif spec.key == "doctors":
        shown = item.get("name")
    code = item.get("id")
    if shown and code and shown != code:
        return f"{shown} ({code})"
    return str(shown or code or item.get("start") or "")


def _coverage_form(doc: dict[str, Any], languages: list[str]) -> Form:
    insurances = [str(i["id"]) for i in doc.get("insurances") or []]
    items = []
    for i, service in enumerate(doc.get("services") or []):
        prices = service.get("insurance_prices") or {}
        fields = [
            Field(
                f"services.{i}.insurance_prices.{insurance}",
                "insurance_prices",
                NUMBER,
                _show(prices.get(insurance), NUMBER),
                insurance,
            )
            for insurance in insurances
        ]
        items.append(Item(str(i), _title(SPECS["services"], service, languages), fields))
    return Form("coverage", items, columns=insurances)


def _hours_form(doc: dict[str, Any], languages: list[str]) -> Form:
    days = [day.value for day in Weekday]
    hours = doc.get("hours") or {}
    clinic = Item(
        "clinic",
        str(doc.get("name", "")),
        [
            Field(f"hours.{language}", "hours", TEXT, str(hours.get(language, "")), language)
            for language in _keys(hours, languages)
        ],
    )
    items = [clinic]
    for i, doctor in enumerate(doc.get("doctors") or []):
        working = doctor.get("working_hours") or {}
        items.append(
            Item(
                str(i),
                str(doctor.get("name", doctor["id"])),
                [
                    Field(
                        f"doctors.{i}.working_hours.{day}",
                        "working_hours",
                        DAY,
                        say_day(working.get(day) or []),
                        day,
                    )
                    for day in days
                ],
            )
        )
    return Form("hours", items, columns=days)


def _keys(values: Mapping[str, Any], languages: list[str]) -> list[str]:
    return [*languages, *(k for k in values if k not in languages)]


def _show(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == LIST:
        return ", ".join(str(v) for v in value)
    if kind == MAP:
        return "\n".join(f"{k}: {v}" for k, v in dict(value).items())
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# Reading a posted form ----------------------------------------------------------------------


@dataclass
class Applied:
    """The document with the section replaced, and how to find a field from a model error."""

    doc: dict[str, Any]
    positions: dict[str, dict[int, str]] = field(default_factory=dict)
    """Per document list, the form index of each validated position (items were removed)."""

    def field_for(self, location: str) -> str:
        """The posted field an error location belongs to (``doctors.1.working_hours.mon.0.end``
        → ``doctors.1.working_hours.mon``), with positions mapped back to the form's indexes."""
        parts = location.split(".")
        if len(parts) > 1 and parts[0] in self.positions and parts[1].isdigit():
            parts[1] = self.positions[parts[0]].get(int(parts[1]), parts[1])
        if len(parts) > 3 and parts[2] == "working_hours":
            parts = parts[:4]
        return ".".join(parts)


def apply(section: str, doc: dict[str, Any], posted: Mapping[str, str]) -> Applied:
    """The document with ``section`` rebuilt from the posted fields (``remove.<path>.<i>``
    drops an item). Raises ``FormError`` for a field that cannot be read."""
    doc = _copy(doc)
    if section == "coverage":
        for i, service in enumerate(doc.get("services") or []):
            prefix = f"services.{i}.insurance_prices."
            service["insurance_prices"] = {
                name[len(prefix) :]: value.strip()
                for name, value in posted.items()
                if name.startswith(prefix) and value.strip()
            }
        return Applied(doc)
    if section == "hours":
        return Applied(_apply_hours(doc, posted))
    spec = SPECS[section]
    items = doc.get(spec.path) or []
    kept: list[dict[str, Any]] = []
    positions: dict[int, str] = {}
    indexes = [str(i) for i in range(len(items))] + (["new"] if spec.addable else [])
    for index in indexes:
        if posted.get(f"remove.{spec.path}.{index}"):
            continue
        item = _copy(items[int(index)]) if index != "new" else {}
        given = _read_item(spec, f"{spec.path}.{index}", posted)
        if index == "new" and not any(_filled(v) for v in given.values()):
            continue
        for path, value in given.items():
            _set(item, path, value)
        positions[len(kept)] = index
        kept.append(item)
    doc[spec.path] = kept
    return Applied(doc, {spec.path: positions})


def _read_item(spec: FormSpec, prefix: str, posted: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path, kind in spec.fields:
        if path.endswith(".*"):
            base = path[:-2]
            start = f"{prefix}.{base}."
            names = [name for name in posted if name.startswith(start)]
            if names:
                values[base] = {
                    name[len(start) :]: _read(posted[name], kind, name)
                    for name in names
                    if posted[name].strip()
                }
            continue
        if path == "id" and not prefix.endswith(".new"):
            continue  # an existing item keeps its id: others point at it
        name = f"{prefix}.{path}"
        if name in posted:
            values[path] = _read(posted[name], kind, name)
    return values


def _read(raw: str, kind: str, name: str) -> Any:
    text = raw.strip()
    if kind == LIST:
        return [part.strip() for part in re.split(r"[,\n]", text) if part.strip()]
    if kind == MAP:
        mapping: dict[str, str] = {}
        for line in re.split(r"[\n,]", text):
            if not line.strip():
                continue
            key, sep, value = line.partition(":")
            if not sep:
                key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise FormError({name: "key: value"})
            mapping[key.strip()] = value.strip()
        return mapping
    return text or None


def _filled(value: Any) -> bool:
    return bool(value) if not isinstance(value, str) else bool(value.strip())


def _apply_hours(doc: dict[str, Any], posted: Mapping[str, str]) -> dict[str, Any]:
    hours = {
        name.removeprefix("hours."): value.strip()
        for name, value in posted.items()
        if name.startswith("hours.") and value.strip()
    }
    doc["hours"] = hours
    problems: dict[str, str] = {}
    for i, doctor in enumerate(doc.get("doctors") or []):
        working: dict[str, Any] = {}
        for day in Weekday:
            name = f"doctors.{i}.working_hours.{day.value}"
            if name not in posted:
                if day.value in (doctor.get("working_hours") or {}):
                    working[day.value] = doctor["working_hours"][day.value]
                continue
            try:
                periods = read_day(posted[name])
            except ValueError:
                problems[name] = "08:00-12:00 (10:00-10:15) @hospital; 13:00-18:00"
                continue
            if periods:
                working[day.value] = periods
        doctor["working_hours"] = working
    if problems:
        raise FormError(problems)
    return doc


# A day's working hours as text --------------------------------------------------------------

_PERIOD = re.compile(
    r"^\s*(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*(?:\(([^)]*)\))?\s*(?:@\s*([a-z0-9_-]+))?\s*$"
)
_RANGE = re.compile(r"^\s*(\d{1,2}:\d{2})\s*-\s*(\d{1,2}:\d{2})\s*$")


def say_day(periods: list[dict[str, Any]]) -> str:
    """``[{start, end, breaks, hospital}]`` as ``08:00-17:00 (12:00-13:30) @hosp; …``."""
    said = []
    for period in periods:
        text = f"{period['start']}-{period['end']}"
        breaks = period.get("breaks") or []
        if breaks:
            text += " (" + ", ".join(f"{b['start']}-{b['end']}" for b in breaks) + ")"
        if period.get("hospital"):
            text += f" @{period['hospital']}"
        said.append(text)
    return "; ".join(said)


def read_day(text: str) -> list[dict[str, Any]]:
    """The reverse of ``say_day``; ValueError when a part is not a period."""
    periods: list[dict[str, Any]] = []
    for part in text.split(";"):
        if not part.strip():
            continue
        found = _PERIOD.match(part)
        if found is None:
            raise ValueError(part)
        start, end, breaks, hospital = found.groups()
        period: dict[str, Any] = {"start": _hhmm(start), "end": _hhmm(end)}
        if breaks:
            period["breaks"] = []
            for pause in breaks.split(","):
                matched = _RANGE.match(pause)
                if matched is None:
                    raise ValueError(pause)
                period["breaks"].append(
                    {"start": _hhmm(matched.group(1)), "end": _hhmm(matched.group(2))}
                )
        if hospital:
            period["hospital"] = hospital
        periods.append(period)
    return periods


def _hhmm(text: str) -> str:
    hours, minutes = text.split(":")
    return f"{int(hours):02d}:{minutes}"


# Small helpers ------------------------------------------------------------------------------


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _set(item: dict[str, Any], path: str, value: Any) -> None:
    if value is None and path in item and item[path] is None:
        return
    if value is None:
        item.pop(path, None)  # an emptied optional field falls back to its default
        return
    item[path] = value
