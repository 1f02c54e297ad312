"""The clinic's own REST booking API as the calendar backend.

The bot sends the visit as JSON; the API answers *record created* or a *reservation error*. Three
outcomes, kept apart:

- **created** (2xx with a record id): ``BookingService`` records the booking with that id;
- **business error** (slot taken, patient blocked …): ``RecordRejected`` with our code; a taken
  slot is treated as busy for a while so it is not offered again;
- **unknown** (timeout, 5xx, 429, refused auth, a 2xx we cannot read and cannot find by our
  reference): ``CalendarUnavailable``; the caller keeps the intent and tries again with the same
  ``Idempotency-Key`` (one per patient intent, see ``store/intent_tables.py``).

No call is made inside a database transaction: ``BookingService`` holds the slot, calls the API,
then records. A 2xx whose body has no record id (an HTML page from a proxy, a truncated answer)
is resolved by asking the API for the record carrying our reference (``lookup``), and so is a
retried create before it is sent again. Times go out in the clinic's local time with its UTC
offset (``time_zone: clinic``) or in UTC (``time_zone: utc``), as the mapping file says. Paths,
field names, the auth header and error codes come from the mapping file as well.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Collection
from copy import deepcopy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from voice_agent.calendars.base import BackendRecord, BusyInterval, CalendarEvent, ExternalEvent
from voice_agent.clinic.model import Clinic
from voice_agent.errors import CalendarUnavailable, RecordRejected
from voice_agent.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_MAPPING: dict[str, Any] = {
    "create": {"method": "POST", "path": "/appointments"},
    "update": {"method": "PATCH", "path": "/appointments/{external_id}"},
    "cancel": {"method": "DELETE", "path": "/appointments/{external_id}"},
    "list": {"method": "GET", "path": "/appointments"},
    # find our record by our reference (resolves unreadable answers and retried creates)
    "lookup": {"method": "GET", "path": "/appointments", "param": "external_reference"},
    # "clinic": local time with its offset (2026-11-24T09:00:00-03:00); "utc": +00:00
    "time_zone": "clinic",
    "idempotency_header": "Idempotency-Key",
    # our name -> the API's name; a field mapped to null is not sent
    "fields": {
        "appointment_id": "external_reference",
        "doctor_id": "doctor_id",
        "service_id": "service_id",
        "service_name": "service_name",
        "patient_name": "patient_name",
        "patient_phone": "patient_phone",
        "insurance_id": "insurance_id",
        "start": "start",
        "end": "end",
    },
    "list_query": {"doctor_id": "doctor_id", "start": "from", "end": "to"},
    "response": {"id": "id", "error": "error", "items": "items", "status": "status"},
    "cancelled_statuses": ["cancelled", "canceled"],
    # the API's error code -> ours
    "errors": {
        "slot_taken": "slot_taken",
        "slot_unavailable": "slot_taken",
        "patient_blocked": "patient_blocked",
    },
}

REJECTED_TTL_SECONDS = 3600.0
UNREADABLE = object()
"""A 2xx answer whose body is not JSON."""


ClinicApiRejected = RecordRejected  # the name earlier code used


def load_mapping(path: Path | None) -> dict[str, Any]:
    mapping = deepcopy(DEFAULT_MAPPING)
    if path is None:
        return mapping
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(mapping.get(key), dict):
            mapping[key].update(value)
        else:
            mapping[key] = value
    return mapping


def _dig(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


class ClinicApiCalendar:
    name = "clinic_api"
    confirms_synchronously = True

    def __init__(
        self,
        base_url: str,
        clinic: Callable[[], Clinic],
        *,
        auth_header: str | None = None,
        timeout: float = 10.0,
        mapping: dict[str, Any] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Accept": "application/json", "User-Agent": "voice-agent"}
        if auth_header:
            name, _, value = auth_header.partition(":")
            headers[name.strip()] = value.strip()
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout, transport=transport
        )
        self._clinic = clinic
        self._map = mapping or deepcopy(DEFAULT_MAPPING)
        self._rejected: list[tuple[float, BusyInterval]] = []
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, clinic: Callable[[], Clinic]) -> ClinicApiCalendar:
        auth = settings.clinic_api_auth_header
        return cls(
            settings.clinic_api_url or "",
            clinic,
            auth_header=auth.get_secret_value() if auth else None,
            timeout=settings.clinic_api_timeout_seconds,
            mapping=load_mapping(settings.clinic_api_mapping_file),
        )

    # Requests ---------------------------------------------------------------------------------

    def _request(
        self,
        step: str,
        *,
        external_id: str | None = None,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """The decoded answer (``UNREADABLE`` for a 2xx body that is not JSON, {} when empty)."""
        spec = self._map[step]
        path = spec["path"].format(external_id=external_id or "")
        headers = {}
        if idempotency_key:
            headers[self._map["idempotency_header"]] = idempotency_key
        try:
            response = self._http.request(
                spec["method"], path, json=body, params=params, headers=headers
            )
        except httpx.HTTPError as error:
            raise CalendarUnavailable(f"clinic API {step}: {type(error).__name__}") from error
        if response.is_success:
            if not response.content:
                return {}
            try:
                return response.json()
            except ValueError:
                return UNREADABLE
        if response.status_code in (401, 403) or response.status_code >= 500:
            raise CalendarUnavailable(f"clinic API {step}: HTTP {response.status_code}")
        if response.status_code == 429:
            raise CalendarUnavailable(f"clinic API {step}: throttled")
        try:
            their_code = str(_dig(response.json(), self._map["response"]["error"]) or "")
        except ValueError:
            their_code = ""
        code = self._map["errors"].get(their_code) or self._map["errors"].get(
            their_code.lower(), "not_found" if response.status_code == 404 else "rejected"
        )
        raise RecordRejected(code, f"clinic API {step}: HTTP {response.status_code} {code}")

    def _time(self, value: datetime) -> str:
        if self._map.get("time_zone", "clinic") == "utc":
            return value.astimezone(UTC).isoformat()
        return value.astimezone(self._clinic().tz).isoformat()

    def _body(self, values: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for ours, theirs in self._map["fields"].items():
            if theirs and ours in values and values[ours] is not None:
                value = values[ours]
                body[theirs] = self._time(value) if isinstance(value, datetime) else value
        return body

    def _items(self, answer: Any) -> list[dict[str, Any]]:
        items = answer if isinstance(answer, list) else _dig(answer, self._map["response"]["items"])
        return [item for item in items or [] if isinstance(item, dict)]

    def find_by_reference(self, reference: str) -> str | None:
        """The id of the live record carrying our reference (the appointment id), if any."""
        lookup = self._map.get("lookup")
        if not lookup:
            return None
        answer = self._request("lookup", params={lookup["param"]: reference})
        if answer is UNREADABLE:
            raise CalendarUnavailable("clinic API lookup: unreadable answer")
        ours = self._map["fields"]["appointment_id"]
        response = self._map["response"]
        for item in self._items(answer):
            status = str(item.get(response["status"], "")).lower()
            if item.get(ours) == reference and status not in self._map["cancelled_statuses"]:
                record_id = item.get(response["id"])
                if record_id is not None:
                    return str(record_id)
        return None

    def create_sync(self, record: BackendRecord, key: str, *, retried: bool = False) -> str:
        """Create the record, or find the one an earlier attempt created."""
        if retried:
            found = self.find_by_reference(record.appointment_id)
            if found is not None:
                return found
        answer = self._request("create", body=self._body(record.model_dump()), idempotency_key=key)
        record_id = None if answer is UNREADABLE else _dig(answer, self._map["response"]["id"])
        if record_id is not None:
            return str(record_id)
        # A 2xx we cannot read: the record may exist. Ask for it by our reference.
        found = self.find_by_reference(record.appointment_id)
        if found is None:
            raise CalendarUnavailable("clinic API create: no record id in the answer")
        logger.info("clinic API create: unreadable answer resolved by lookup")
        return found

    # The confirming-backend protocol -----------------------------------------------------------

    async def create_record(self, record: BackendRecord, key: str, *, retried: bool) -> str:
        return await asyncio.to_thread(self.create_sync, record, key, retried=retried)

    async def move_record(self, external_id: str, record: BackendRecord, key: str) -> None:
        body = self._body({"start": record.start, "end": record.end, "doctor_id": record.doctor_id})
        await asyncio.to_thread(
            self._request, "update", external_id=external_id, body=body, idempotency_key=key
        )

    async def cancel_record(self, external_id: str, key: str) -> None:
        try:
            await asyncio.to_thread(
                self._request, "cancel", external_id=external_id, idempotency_key=key
            )
        except RecordRejected as error:
            if error.code != "not_found":  # already gone: cancelling is idempotent
                raise

    # Busy time: what the API refused recently ---------------------------------------------------

    def remember_taken(self, doctor_id: str, start: datetime, end: datetime) -> None:
        with self._lock:
            self._rejected.append(
                (time.monotonic(), BusyInterval(doctor_id=doctor_id, start=start, end=end))
            )

    async def busy(
        self, doctor_ids: Collection[str], start: datetime, end: datetime, *, fresh: bool = False
    ) -> list[BusyInterval]:
        now = time.monotonic()
        with self._lock:
            self._rejected = [(t, b) for t, b in self._rejected if now - t < REJECTED_TTL_SECONDS]
            return [
                b
                for _, b in self._rejected
                if b.doctor_id in doctor_ids and b.start < end and b.end > start
            ]

    # The CalendarBackend protocol: bookings, moves and cancellations are confirmed through the
    # methods above by BookingService; the outbox never writes to this backend.

    async def create_event(self, event: CalendarEvent, idempotency_key: str) -> str | None:
        return None

    async def move_event(self, event: CalendarEvent, external_id: str | None) -> None:
        return None

    async def delete_event(self, event: CalendarEvent, external_id: str | None) -> None:
        return None

    async def list_events(
        self, doctor_id: str, start: datetime, end: datetime
    ) -> list[ExternalEvent]:
        query = self._map["list_query"]
        params = {
            query["doctor_id"]: doctor_id,
            query["start"]: self._time(start),
            query["end"]: self._time(end),
        }
        answer = await asyncio.to_thread(self._request, "list", params=params)
        if answer is UNREADABLE:
            raise CalendarUnavailable("clinic API list: unreadable answer")
        fields = self._map["fields"]
        response = self._map["response"]
        found = []
        for item in self._items(answer):
            status = str(item.get(response["status"], "")).lower()
            found.append(
                ExternalEvent(
                    external_id=str(item[response["id"]]),
                    appointment_id=item.get(fields["appointment_id"]),
                    start=_parse_time(item[fields["start"]]),
                    end=_parse_time(item[fields["end"]]),
                    cancelled=status in self._map["cancelled_statuses"],
                )
            )
        return found

    def close(self) -> None:
        self._http.close()


def _parse_time(value: Any) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


__all__ = ["ClinicApiCalendar", "ClinicApiRejected", "load_mapping"]
