"""A clinic's own REST booking API: the visit arrives as JSON, the answer is *record created*
or a reservation error. It checks the auth header and the idempotency key (a replay returns the
first answer), knows taken slots and blocked patients, and injects faults (500s, slow answers,
applied-then-failed)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.http_fake import Fault, LocalHttpFake, read_body, write_response

REQUIRED = ("external_reference", "doctor_id", "start", "end", "patient_name")


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

    def __init__(self, token: str = "clinic-token") -> None:
        self.token = token
        self.state = ClinicApiState()
        super().__init__()

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/api"

    def take(self, doctor_id: str, start: datetime) -> None:
        with self.lock:
            self.state.taken.add((doctor_id, start.isoformat()))

    def block_patient(self, phone: str) -> None:
        with self.lock:
            self.state.blocked_phones.add(phone)

    def fail_next(
        self, count: int = 1, status: int = 500, *, delay: float = 0.0, apply: bool = False
    ) -> None:
        with self.lock:
            self.state.faults += [Fault(status, delay, apply) for _ in range(count)]

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
                record.update(json.loads(raw))
                return 200, record
            if method == "DELETE":
                record["status"] = "cancelled"
                self.state.taken.discard((record["doctor_id"], record["start"]))
                return 204, None
        return 404, {"error": "not_found"}

    def _create(self, body: dict[str, Any]) -> tuple[int, Any]:
        missing = [name for name in REQUIRED if not body.get(name)]
        if missing:
            return 422, {"error": "invalid", "missing": missing}
        start = datetime.fromisoformat(body["start"]).isoformat()
        if body.get("patient_phone") in self.state.blocked_phones:
            return 422, {"error": "patient_blocked"}
        if (body["doctor_id"], start) in self.state.taken:
            return 409, {"error": "slot_taken"}
        record_id = "rec-" + uuid.uuid4().hex[:12]
        record = {**body, "id": record_id, "status": "booked"}
        self.state.records[record_id] = record
        self.state.taken.add((body["doctor_id"], start))
        return 201, {"id": record_id, "status": "booked"}
