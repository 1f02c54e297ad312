"""A local Google Calendar v3 + Sheets v4 server, reached through google-api-python-client.

It checks what the real API checks (paths, ``alt=json``, query parameters, RFC 3339 times, event
ids in base32hex, ``valueInputOption``), keeps state like the real service (deleted events stay
with ``status: cancelled``; deleting twice is ``410``; inserting an existing id is ``409``) and
injects faults: the next N responses fail (500, 429, 403 rateLimitExceeded), are slow, or are
*applied and then* fail (the write happens but the client sees an error), and staff can delete or
move an event "by hand".
"""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fakes import http_fake
from tests.fakes.http_fake import LocalHttpFake, read_body, write_response

EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
SEND_UPDATES = {"all", "externalOnly", "none"}
VALUE_INPUT = {"RAW", "USER_ENTERED"}
INSERT_DATA = {"OVERWRITE", "INSERT_ROWS"}


class ApiError(Exception):
    def __init__(self, code: int, message: str, reason: str = "invalid", status: str = "") -> None:
        super().__init__(message)
        self.code, self.message, self.reason = code, message, reason
        self.status = status or {
            400: "INVALID_ARGUMENT",
            403: "PERMISSION_DENIED",
            404: "NOT_FOUND",
            409: "ALREADY_EXISTS",
            410: "NOT_FOUND",
            429: "RESOURCE_EXHAUSTED",
            500: "INTERNAL",
        }.get(code, "UNKNOWN")

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [{"domain": "global", "reason": self.reason, "message": self.message}],
                "status": self.status,
            }
        }


@dataclass
class Fault(http_fake.Fault):
    reason: str = "backendError"
    path_contains: str = ""

    def meets(self, method: str, path: str) -> bool:
        return self.path_contains in path


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any
    status: int


@dataclass
class GoogleState:
    calendars: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    sheets: dict[str, dict[str, list[list[Any]]]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    formulas: list[str] = field(default_factory=list)  # cells Sheets would have evaluated


def _parse_time(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise ApiError(400, f"Missing {name}.", "required")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"Bad Request: {name} {value!r}", "badRequest") from None
    if parsed.tzinfo is None:
        raise ApiError(400, f"{name} needs a time zone offset", "badRequest")
    return parsed


def _event_times(event: dict[str, Any]) -> tuple[datetime, datetime]:
    return (
        _parse_time(event["start"].get("dateTime"), "start.dateTime"),
        _parse_time(event["end"].get("dateTime"), "end.dateTime"),
    )


def _column_index(letters: str) -> int:
    index = 0
    for char in letters:
        index = index * 26 + (ord(char.upper()) - 64)
    return index - 1


A1 = re.compile(
    r"^(?:(?P<sheet>'[^']+'|[^!]+)!)?(?P<c1>[A-Z]+)(?P<r1>\d*)(?::(?P<c2>[A-Z]+)(?P<r2>\d*))?$"
)


def _parse_range(text: str) -> tuple[str | None, int, int, int | None, int | None]:
    match = A1.match(text)
    if match is None:
        raise ApiError(400, f"Unable to parse range: {text}", "badRequest")
    sheet = match["sheet"]
    if sheet and sheet.startswith("'"):
        sheet = sheet[1:-1]
    c1 = _column_index(match["c1"])
    c2 = _column_index(match["c2"] or match["c1"])
    r1 = int(match["r1"]) - 1 if match["r1"] else None
    r2 = int(match["r2"]) - 1 if match["r2"] else None
    return sheet, c1, c2, r1, r2


def _quick_ack(connection: socket.socket) -> None:
    """ACK at once: httplib2 writes headers and body apart, and Nagle + delayed ACK would add
    40 ms to every request (Linux only; harmless elsewhere)."""
    quick_ack = getattr(socket, "TCP_QUICKACK", None)
    if quick_ack is not None:
        connection.setsockopt(socket.IPPROTO_TCP, quick_ack, 1)


class GoogleFake(LocalHttpFake):
    """Run with ``with GoogleFake() as fake:``; aim the SDK at ``fake.calendar_endpoint`` and
    ``fake.sheets_endpoint``."""

    methods = ("GET", "POST", "PATCH", "PUT", "DELETE")

    def __init__(self) -> None:
        self.state = GoogleState()
        super().__init__()

    @property
    def calendar_endpoint(self) -> str:
        return f"{self.base_url}/calendar/v3/"

    @property
    def sheets_endpoint(self) -> str:
        return f"{self.base_url}/"

    # Set-up and inspection --------------------------------------------------------------------

    def add_calendar(self, calendar_id: str) -> None:
        with self.lock:
            self.state.calendars.setdefault(calendar_id, {})

    def add_spreadsheet(self, spreadsheet_id: str, tab: str = "Sheet1") -> None:
        with self.lock:
            self.state.sheets.setdefault(spreadsheet_id, {})[tab] = []

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        *,
        reason: str = "backendError",
        delay: float = 0.0,
        apply: bool = False,
        path_contains: str = "",
    ) -> None:
        with self.lock:
            self.state.faults += [
                Fault(status, delay, apply, reason=reason, path_contains=path_contains)
                for _ in range(count)
            ]

    def slow_next(self, count: int, seconds: float, path_contains: str = "") -> None:
        self.fail_next(count, 200, delay=seconds, path_contains=path_contains)

    def events(self, calendar_id: str, *, include_cancelled: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            events = self.state.calendars.get(calendar_id, {}).values()
            return [dict(e) for e in events if include_cancelled or e.get("status") != "cancelled"]

    def rows(self, spreadsheet_id: str, tab: str = "Sheet1") -> list[list[Any]]:
        with self.lock:
            return [list(row) for row in self.state.sheets[spreadsheet_id][tab]]

    def requests(self, method: str | None = None, path_contains: str = "") -> list[Recorded]:
        with self.lock:
            return [
                r
                for r in self.state.requests
                if (method is None or r.method == method) and path_contains in r.path
            ]

    def delete_by_hand(self, calendar_id: str, event_id: str) -> None:
        with self.lock:
            self.state.calendars[calendar_id][event_id]["status"] = "cancelled"

    def move_by_hand(self, calendar_id: str, event_id: str, start: datetime, end: datetime) -> None:
        with self.lock:
            event = self.state.calendars[calendar_id][event_id]
            event["start"] = {"dateTime": start.isoformat()}
            event["end"] = {"dateTime": end.isoformat()}

    def block_by_hand(self, calendar_id: str, start: datetime, end: datetime) -> str:
        """The doctor blocks time in Google Calendar's own UI."""
        with self.lock:
            event_id = uuid.uuid4().hex
            self.state.calendars.setdefault(calendar_id, {})[event_id] = {
                "kind": "calendar#event",
                "id": event_id,
                "status": "confirmed",
                "summary": "Blocked",
                "start": {"dateTime": start.isoformat()},
                "end": {"dateTime": end.isoformat()},
            }
            return event_id

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Hold every request until the block ends (a frozen upstream)."""
        with self.lock:
            yield

    # HTTP -------------------------------------------------------------------------------------

    def _serve(self, request: BaseHTTPRequestHandler, method: str) -> None:
        _quick_ack(request.connection)
        parts = urlsplit(request.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        raw = read_body(request)
        body: Any = None
        status, payload = 200, None
        fault = self._next_fault(self.state.faults, method, parts.path)
        try:
            if raw:
                body = json.loads(raw)
            if method != "DELETE" and query.get("alt") != ["json"]:
                raise ApiError(400, "alt=json expected", "badRequest")
            if fault is not None and fault.fails_before:
                raise ApiError(fault.status, "Injected failure", fault.reason)
            with self.lock:
                status, payload = self._route(method, parts.path, query, body)
            if fault is not None and fault.fails_after:
                raise ApiError(fault.status, "Injected failure after apply", fault.reason)
        except ApiError as error:
            status, payload = error.code, error.body()
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            status, payload = 400, ApiError(400, f"Invalid request: {error}").body()
        with self.lock:
            self.state.requests.append(Recorded(method, parts.path, query, body, status))
        data = b"" if payload is None else json.dumps(payload).encode()
        write_response(request, status, data, "application/json; charset=UTF-8" if data else None)

    def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any]:
        if path == "/calendar/v3/freeBusy" and method == "POST":
            return 200, self._free_busy(body)
        shared = re.fullmatch(r"/calendar/v3/users/me/calendarList/([^/]+)", path)
        if shared and method == "GET":  # a calendar shared with the service account
            calendar_id = unquote(shared[1])
            if calendar_id not in self.state.calendars:
                raise ApiError(404, "Not Found", "notFound")
            return 200, {
                "kind": "calendar#calendarListEntry",
                "id": calendar_id,
                "summary": calendar_id,
                "accessRole": "writer",
            }
        match = re.fullmatch(r"/calendar/v3/calendars/([^/]+)/events(?:/([^/]+))?", path)
        if match:
            calendar_id = unquote(match[1])
            if calendar_id not in self.state.calendars:
                raise ApiError(404, "Not Found", "notFound")
            events = self.state.calendars[calendar_id]
            event_id = unquote(match[2]) if match[2] else None
            if event_id is None and method == "GET":
                return 200, self._list(events, query)
            if event_id is None and method == "POST":
                return 200, self._insert(events, query, body)
            if event_id is not None:
                return self._one(events, event_id, method, query, body)
        match = re.fullmatch(r"/v4/spreadsheets/([^/]+)/values/(.+?)(:append)?", path)
        if match:
            spreadsheet = self.state.sheets.get(unquote(match[1]))
            if spreadsheet is None:
                raise ApiError(404, "Requested entity was not found.", "notFound")
            a1 = unquote(match[2])
            if match[3] and method == "POST":
                return 200, self._append(unquote(match[1]), spreadsheet, a1, query, body)
            if method == "GET":
                return 200, self._get_values(spreadsheet, a1)
        raise ApiError(404, f"Not Found: {method} {path}", "notFound")

    # Calendar ---------------------------------------------------------------------------------

    def _free_busy(self, body: dict[str, Any]) -> dict[str, Any]:
        allowed = {"timeMin", "timeMax", "timeZone", "items", "groupExpansionMax"}
        allowed |= {"calendarExpansionMax"}
        if set(body) - allowed:
            raise ApiError(400, f"Unknown fields {set(body) - allowed}", "badRequest")
        start = _parse_time(body.get("timeMin"), "timeMin")
        end = _parse_time(body.get("timeMax"), "timeMax")
        if end <= start:
            raise ApiError(400, "The specified time range is empty.", "timeRangeEmpty")
        calendars: dict[str, Any] = {}
        for item in body["items"]:
            calendar_id = item["id"]
            if calendar_id not in self.state.calendars:
                calendars[calendar_id] = {
                    "errors": [{"domain": "global", "reason": "notFound"}],
                    "busy": [],
                }
                continue
            busy = []
            for event in self.state.calendars[calendar_id].values():
                if event.get("status") == "cancelled" or event.get("transparency") == "transparent":
                    continue
                s, e = _event_times(event)
                if s < end and e > start:
                    busy.append({"start": s.isoformat(), "end": e.isoformat()})
            calendars[calendar_id] = {"busy": sorted(busy, key=lambda b: b["start"])}
        return {
            "kind": "calendar#freeBusy",
            "timeMin": body["timeMin"],
            "timeMax": body["timeMax"],
            "calendars": calendars,
        }

    def _list(self, events: dict[str, dict[str, Any]], query: dict[str, list[str]]) -> Any:
        time_min = _parse_time(query["timeMin"][0], "timeMin") if "timeMin" in query else None
        time_max = _parse_time(query["timeMax"][0], "timeMax") if "timeMax" in query else None
        show_deleted = query.get("showDeleted") == ["true"]
        wanted = [v.split("=", 1) for v in query.get("privateExtendedProperty", [])]
        found = []
        for event in events.values():
            if event.get("status") == "cancelled" and not show_deleted:
                continue
            s, e = _event_times(event)
            if (time_min and e <= time_min) or (time_max and s >= time_max):
                continue
            private = event.get("extendedProperties", {}).get("private", {})
            if any(private.get(k) != v for k, v in wanted):
                continue
            found.append(event)
        found.sort(key=lambda e: e["start"]["dateTime"])
        size = int(query.get("maxResults", ["250"])[0])
        offset = int(query.get("pageToken", ["0"])[0])
        page = found[offset : offset + size]
        answer: dict[str, Any] = {"kind": "calendar#events", "items": page}
        if offset + size < len(found):
            answer["nextPageToken"] = str(offset + size)
        return answer

    def _check_event(self, body: dict[str, Any], query: dict[str, list[str]]) -> None:
        if "sendUpdates" in query and query["sendUpdates"][0] not in SEND_UPDATES:
            raise ApiError(400, "Invalid sendUpdates", "invalidParameter")
        if "start" in body or "end" in body:
            s, e = _event_times(body)
            if e < s:
                raise ApiError(400, "The specified time range is empty.", "timeRangeEmpty")
        private = body.get("extendedProperties", {}).get("private", {})
        if not all(isinstance(v, str) for v in private.values()):
            raise ApiError(400, "extendedProperties values must be strings", "invalid")

    def _insert(
        self, events: dict[str, dict[str, Any]], query: dict[str, list[str]], body: Any
    ) -> Any:
        self._check_event(body, query)
        if "start" not in body or "end" not in body:
            raise ApiError(400, "Missing end time.", "required")
        event_id = body.get("id") or uuid.uuid4().hex
        if not EVENT_ID.match(event_id):
            raise ApiError(400, "Invalid resource id value.", "invalid")
        if event_id in events:
            raise ApiError(409, "The requested identifier already exists.", "duplicate")
        event = {"kind": "calendar#event", "status": "confirmed", **body, "id": event_id}
        event["htmlLink"] = f"https://www.google.com/calendar/event?eid={event_id}"
        events[event_id] = event
        return event

    def _one(
        self,
        events: dict[str, dict[str, Any]],
        event_id: str,
        method: str,
        query: dict[str, list[str]],
        body: Any,
    ) -> tuple[int, Any]:
        event = events.get(event_id)
        if event is None:
            raise ApiError(404, "Not Found", "notFound")
        if method == "GET":
            return 200, event
        if method == "PATCH":
            self._check_event(body, query)
            for key, value in body.items():
                if key == "extendedProperties":
                    for scope, values in value.items():
                        event.setdefault("extendedProperties", {}).setdefault(scope, {}).update(
                            values
                        )
                else:
                    event[key] = value
            return 200, event
        if method == "DELETE":
            if event.get("status") == "cancelled":
                raise ApiError(410, "Resource has been deleted", "deleted")
            event["status"] = "cancelled"
            return 204, None
        raise ApiError(405, "Method not allowed", "badRequest")

    # Sheets -----------------------------------------------------------------------------------

    def _tab(self, spreadsheet: dict[str, list[list[Any]]], sheet: str | None) -> list[list[Any]]:
        if sheet is None:
            return next(iter(spreadsheet.values()))
        if sheet not in spreadsheet:
            raise ApiError(400, f"Unable to parse range: {sheet}", "badRequest")
        return spreadsheet[sheet]

    def _get_values(self, spreadsheet: dict[str, list[list[Any]]], a1: str) -> Any:
        sheet, c1, c2, r1, r2 = _parse_range(a1)
        rows = self._tab(spreadsheet, sheet)
        selected = rows[(r1 or 0) : (None if r2 is None else r2 + 1)]
        values = []
        for row in selected:
            cells = row[c1 : c2 + 1]
            while cells and cells[-1] in ("", None):
                cells = cells[:-1]
            values.append(cells)
        while values and not values[-1]:
            values.pop()
        answer: dict[str, Any] = {"range": a1, "majorDimension": "ROWS"}
        if values:
            answer["values"] = values
        return answer

    def _append(
        self,
        spreadsheet_id: str,
        spreadsheet: dict[str, list[list[Any]]],
        a1: str,
        query: dict[str, list[str]],
        body: Any,
    ) -> Any:
        option = query.get("valueInputOption", [None])[0]
        if option not in VALUE_INPUT:
            raise ApiError(400, "Invalid valueInputOption", "badRequest")
        insert = query.get("insertDataOption", ["OVERWRITE"])[0]
        if insert not in INSERT_DATA:
            raise ApiError(400, "Invalid insertDataOption", "badRequest")
        if set(body) - {"values", "range", "majorDimension"}:
            raise ApiError(400, "Unknown fields in ValueRange", "badRequest")
        values = body["values"]
        if not isinstance(values, list) or not all(isinstance(r, list) for r in values):
            raise ApiError(400, "values must be a list of rows", "badRequest")
        for row in values:
            for cell in row:
                if not isinstance(cell, str | int | float | bool):
                    raise ApiError(400, f"Invalid value {cell!r}", "badRequest")
        sheet, *_ = _parse_range(a1)
        rows = self._tab(spreadsheet, sheet)
        first = len(rows) + 1
        if option == "USER_ENTERED":  # as typed in the UI: '… is literal text, =… a formula
            for row in values:
                for cell in row:
                    if isinstance(cell, str) and cell.startswith(("=", "+", "-", "@")):
                        self.state.formulas.append(cell)
            values = [
                [c[1:] if isinstance(c, str) and c.startswith("'") else c for c in row]
                for row in values
            ]
        rows.extend([list(r) for r in values])
        return {
            "spreadsheetId": spreadsheet_id,
            "updates": {
                "spreadsheetId": spreadsheet_id,
                "updatedRange": f"{sheet or 'Sheet1'}!A{first}:Z{len(rows)}",
                "updatedRows": len(values),
                "updatedCells": sum(len(r) for r in values),
            },
        }
