"""A clinic's own REST booking API: the visit arrives as JSON, the answer is *record created*
or a reservation error. It checks the auth header, the idempotency key (a replay returns the
first answer) and that times carry the clinic's UTC offset, knows taken slots and blocked
patients, finds records by our reference, and injects faults (500s, slow answers,
applied-then-failed, a 201 whose body is an HTML page)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from tests.fakes import http_fake
from tests.fakes.http_fake import LocalHttpFake, read_body, write_response

REQUIRED = ("external_reference", "doctor_id", "start", "end", "patient_name")


@dataclass
class Fault(http_fake.Fault):
    method: str = ""
    path_contains: str = ""
    html: bool = False
    """Apply the request, then answer 201 with an HTML page (a proxy's, a framework's)."""

    def meets(self, method: str, path: str) -> bool:
        return (not self.method or method == self.method) and self.path_contains in path


def _instant(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(UTC).isoformat()


@dataclass
class ClinicApiState:
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    replies: dict[str, tuple[int, Any]] = field(default_factory=dict)
    taken: set[tuple[str, str]] = field(default_factory=set)  # (doctor_id, start iso)
    blocked_phones: set[str] = field(default_factory=set)
    faults: list[Fault] = field(default_factory=list)
    creates_received: int = 0


class ClinicApiFake(LocalHttpFake):
    methods = ("GET", "POST", "PATCH", "DELETE")

    def __init__(
        self, token: str = "clinic-token", timezone: str | None = "America/Sao_Paulo"
    ) -> None:
        self.token = token
        self.tz = ZoneInfo(timezone) if timezone else None
        self.state = ClinicApiState()
        super().__init__()

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/api"

    def take(self, doctor_id: str, start: datetime) -> None:
        with self.lock:
            self.state.taken.add((doctor_id, start.astimezone(UTC).isoformat()))

    def block_patient(self, phone: str) -> None:
        with self.lock:
            self.state.blocked_phones.add(phone)

    def fail_next(
        self,
        count: int = 1,
        status: int = 500,
        *,
        delay: float = 0.0,
        apply: bool = False,
        method: str = "",
        path_contains: str = "",
        html: bool = False,
    ) -> None:
        with self.lock:
            self.state.faults += [
                Fault(status, delay, apply or html, method, path_contains, html)
                for _ in range(count)
            ]

    def set_status(self, reference: str, status: str) -> None:
        """Staff mark the record in the clinic's own system (attended, no_show …)."""
        with self.lock:
            for record in self.state.records.values():
                if record["external_reference"] == reference:
                    record["status"] = status

    def active_records(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(r) for r in self.state.records.values() if r["status"] == "booked"]

    def _serve(self, request: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(request.path)
        raw = read_body(request)
        fault = self._next_fault(self.state.faults, method, parts.path)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            status, payload = 401, {"error": "unauthorized"}
        elif fault is not None and fault.fails_before:
            status, payload = fault.status, {"error": "internal"}
        else:
            key = request.headers.get("Idempotency-Key")
            with self.lock:
                status, payload = self._route(method, parts.path, parts.query, raw, key)
            if fault is not None and fault.html:
                page = b"<html><body><h1>Created</h1></body></html>"
                write_response(request, 201, page, "text/html")
                return
            if fault is not None and fault.fails_after:
                status, payload = fault.status, {"error": "internal"}
        data = json.dumps(payload).encode() if payload is not None else b""
        write_response(request, status, data, "application/json")

    def _route(
        self, method: str, path: str, query: str, raw: bytes, key: str | None
    ) -> tuple[int, Any]:
        if path == "/api/appointments" and method == "POST":
            if not key:
                return 400, {"error": "idempotency_key_required"}
            if key in self.state.replies:
                return self.state.replies[key]
            self.state.creates_received += 1
            answer = self._create(json.loads(raw))
            self.state.replies[key] = answer
            return answer
        if path == "/api/appointments" and method == "GET":
            params = parse_qs(query)
            if "external_reference" in params:
                reference = params["external_reference"][0]
                found = [
                    r for r in self.state.records.values() if r["external_reference"] == reference
                ]
                return 200, {"items": found}
            doctor = params["doctor_id"][0]
            start = datetime.fromisoformat(params["from"][0])
            end = datetime.fromisoformat(params["to"][0])
            items = [
                r
                for r in self.state.records.values()
                if r["doctor_id"] == doctor
                and datetime.fromisoformat(r["start"]) < end
                and datetime.fromisoformat(r["end"]) > start
            ]
            return 200, {"items": items}
        if path.startswith("/api/appointments/"):
            record = self.state.records.get(path.rsplit("/", 1)[1])
            if record is None:
                return 404, {"error": "not_found"}
            if method == "PATCH":
                change = json.loads(raw)
                problem = self._times_problem(change)
                if problem:
                    return 422, {"error": "invalid", "detail": problem}
                if record["status"] != "booked":
                    return 409, {"error": "record_cancelled"}
                doctor = change.get("doctor_id", record["doctor_id"])
                old = (record["doctor_id"], _instant(record["start"]))
                new = (doctor, _instant(change.get("start", record["start"])))
                if new != old and new in self.state.taken:
                    return 409, {"error": "slot_taken"}
                self.state.taken.discard(old)
                self.state.taken.add(new)
                record.update(change)
                return 200, record
            if method == "DELETE":
                record["status"] = "cancelled"
                self.state.taken.discard((record["doctor_id"], _instant(record["start"])))
                return 204, None
        return 404, {"error": "not_found"}

    def _create(self, body: dict[str, Any]) -> tuple[int, Any]:
        missing = [name for name in REQUIRED if not body.get(name)]
        if missing:
            return 422, {"error": "invalid", "missing": missing}
        problem = self._times_problem(body)
        if problem:
            return 422, {"error": "invalid", "detail": problem}
        start = _instant(body["start"])
        if body.get("patient_phone") in self.state.blocked_phones:
            return 422, {"error": "patient_blocked"}
        if (body["doctor_id"], start) in self.state.taken:
            return 409, {"error": "slot_taken"}
        record_id = "rec-" + uuid.uuid4().hex[:12]
        record = {**body, "id": record_id, "status": "booked"}
        self.state.records[record_id] = record
        self.state.taken.add((body["doctor_id"], start))
        return 201, {"id": record_id, "status": "booked"}

    def _times_problem(self, body: dict[str, Any]) -> str:
        """Times must carry an offset, and (when the clinic has a zone) its local offset."""
        for name in ("start", "end"):
            if name not in body:
                continue
            value = datetime.fromisoformat(body[name])
            if value.tzinfo is None:
                return f"{name} has no UTC offset"
            if self.tz is not None and value.utcoffset() != value.astimezone(self.tz).utcoffset():
                return f"{name} is not in the clinic's local time"
        return ""
