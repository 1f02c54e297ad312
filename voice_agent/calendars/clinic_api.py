"""The clinic's own REST booking API as the calendar backend.

The bot sends the visit as JSON; the API answers *record created* or a *reservation error*. Three
outcomes, kept apart:

- **created** (2xx): the booking commits, with the API's record id as ``external_id``;
- **business error** (slot taken, patient blocked …): ``BookingError`` with that code, the
  booking rolls back, and a taken slot is treated as busy for a while so it is not offered again;
- **transport failure** (timeout, 5xx, refused auth): ``BookingError("backend_unavailable")``,
  the booking rolls back, the patient hears "please try again later", the doctor is alerted.

Nothing is recorded as booked that the clinic did not accept: the call happens inside the booking
transaction, after our own slot claim and before commit (``ClinicApiConfirmer``). Every create
carries an ``Idempotency-Key`` (the appointment id), so a retry never makes a second record.
Paths, field names, the auth header and error codes come from configuration.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Collection
from copy import deepcopy
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from sqlmodel import Session

from voice_agent.calendars.base import (
    BusyInterval,
    CalendarEvent,
    CalendarUnavailable,
    ExternalEvent,
    SlotRejected,
)
from voice_agent.clinic.model import Clinic
from voice_agent.scheduling.booking import BookingError
from voice_agent.settings import Settings
from voice_agent.store.tables import Appointment, Patient

logger = logging.getLogger(__name__)

DEFAULT_MAPPING: dict[str, Any] = {
    "create": {"method": "POST", "path": "/appointments"},
    "update": {"method": "PATCH", "path": "/appointments/{external_id}"},
    "cancel": {"method": "DELETE", "path": "/appointments/{external_id}"},
    "list": {"method": "GET", "path": "/appointments"},
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

MESSAGES = {
    "slot_taken": "Sorry, that time was just taken; let me find another one.",
    "patient_blocked": (
        "The clinic's system cannot book this for you automatically; "
        "I can put you through to the staff."
    ),
    "rejected": "The clinic's system did not accept this booking; let me try another time.",
    "backend_unavailable": (
        "The clinic's booking system is not answering right now; please try again later."
    ),
}
REJECTED_TTL_SECONDS = 3600.0


class ClinicApiRejected(SlotRejected):
    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code


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
                return {}
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
        raise ClinicApiRejected(code, f"clinic API {step}: HTTP {response.status_code} {code}")

    def _body(self, values: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {}
        for ours, theirs in self._map["fields"].items():
            if theirs and ours in values and values[ours] is not None:
                value = values[ours]
                body[theirs] = value.isoformat() if isinstance(value, datetime) else value
        return body

    def create_sync(self, values: dict[str, Any], idempotency_key: str) -> str:
        answer = self._request("create", body=self._body(values), idempotency_key=idempotency_key)
        record_id = _dig(answer, self._map["response"]["id"])
        if record_id is None:
            raise CalendarUnavailable("clinic API create: no record id in the answer")
        return str(record_id)

    # Busy time: what the API refused recently ---------------------------------------------------

    def remember_taken(self, doctor_id: str, start: datetime, end: datetime) -> None:
        with self._lock:
            self._rejected.append(
                (time.monotonic(), BusyInterval(doctor_id=doctor_id, start=start, end=end))
            )

    async def busy(
        self, doctor_ids: Collection[str], start: datetime, end: datetime
    ) -> list[BusyInterval]:
        now = time.monotonic()
        with self._lock:
            self._rejected = [(t, b) for t, b in self._rejected if now - t < REJECTED_TTL_SECONDS]
            return [
                b
                for _, b in self._rejected
                if b.doctor_id in doctor_ids and b.start < end and b.end > start
            ]

    # The CalendarBackend protocol (reschedule and cancel go through the outbox) ---------------

    async def create_event(self, event: CalendarEvent, idempotency_key: str) -> str | None:
        values = {
            "appointment_id": event.appointment_id,
            "doctor_id": event.doctor_id,
            "service_name": event.service_name,
            "patient_name": event.patient_full_name or event.patient_first_name,
            "start": event.start,
            "end": event.end,
        }
        return await asyncio.to_thread(self.create_sync, values, idempotency_key)

    async def move_event(self, event: CalendarEvent, external_id: str | None) -> None:
        if external_id is None:
            raise ClinicApiRejected("not_found", "no record id to move")
        body = self._body({"start": event.start, "end": event.end, "doctor_id": event.doctor_id})
        key = f"{event.appointment_id}:move:{event.start.isoformat()}"
        await asyncio.to_thread(
            self._request, "update", external_id=external_id, body=body, idempotency_key=key
        )

    async def delete_event(self, event: CalendarEvent, external_id: str | None) -> None:
        if external_id is None:
            return
        try:
            await asyncio.to_thread(
                self._request,
                "cancel",
                external_id=external_id,
                idempotency_key=f"{event.appointment_id}:cancel",
            )
        except ClinicApiRejected as error:
            if error.code != "not_found":
                raise

    async def list_events(
        self, doctor_id: str, start: datetime, end: datetime
    ) -> list[ExternalEvent]:
        query = self._map["list_query"]
        params = {
            query["doctor_id"]: doctor_id,
            query["start"]: start.isoformat(),
            query["end"]: end.isoformat(),
        }
        answer = await asyncio.to_thread(self._request, "list", params=params)
        items = answer if isinstance(answer, list) else _dig(answer, self._map["response"]["items"])
        fields = self._map["fields"]
        response = self._map["response"]
        found = []
        for item in items or []:
            status = str(item.get(response["status"], "")).lower()
            found.append(
                ExternalEvent(
                    external_id=str(item[response["id"]]),
                    appointment_id=item.get(fields["appointment_id"]),
                    start=datetime.fromisoformat(str(item[fields["start"]]).replace("Z", "+00:00")),
                    end=datetime.fromisoformat(str(item[fields["end"]]).replace("Z", "+00:00")),
                    cancelled=status in self._map["cancelled_statuses"],
                )
            )
        return found

    def close(self) -> None:
        self._http.close()


class ClinicApiConfirmer:
    """Called by ``BookingService`` inside the booking transaction, before commit."""

    def __init__(
        self,
        api: ClinicApiCalendar,
        clinic: Callable[[], Clinic],
        *,
        alert: Callable[[str, str], None],
    ) -> None:
        self._api = api
        self._clinic = clinic
        self._alert = alert

    def __call__(self, session: Session, appointment: Appointment) -> None:
        clinic = self._clinic()
        patient = session.get(Patient, appointment.patient_id)
        service = clinic.service(appointment.service_id)
        values = {
            "appointment_id": appointment.id,
            "doctor_id": appointment.doctor_id,
            "service_id": appointment.service_id,
            "service_name": service.name(clinic.default_language) if service else None,
            "patient_name": patient.full_name if patient else None,
            "patient_phone": patient.phone if patient else None,
            "insurance_id": appointment.insurance_id,
            "start": appointment.start,
            "end": appointment.end,
        }
        try:
            # The request key (conversation + offer) survives a retry after a lost answer, so
            # the API replays its first answer instead of making a second record.
            key = appointment.request_key or appointment.id
            appointment.external_id = self._api.create_sync(values, idempotency_key=key)
        except ClinicApiRejected as error:
            if error.code == "slot_taken":
                self._api.remember_taken(appointment.doctor_id, appointment.start, appointment.end)
            code = error.code if error.code in MESSAGES else "rejected"
            logger.info("clinic API refused a booking: %s", code)
            raise BookingError(code, MESSAGES[code]) from None
        except CalendarUnavailable as error:
            logger.warning("clinic API unavailable: %s", error)
            self._alert(
                "booking_failed",
                "The clinic's booking system did not answer; a patient's booking could not be "
                f"made ({error}).",
            )
            raise BookingError("backend_unavailable", MESSAGES["backend_unavailable"]) from None
        session.add(appointment)


__all__ = ["ClinicApiCalendar", "ClinicApiConfirmer", "ClinicApiRejected", "load_mapping"]
