"""The interaction log in Google Sheets: one row per interaction, appended in batches.

Columns: time (clinic timezone), patient, phone (masked by setting), kind, details, channel,
appointment time, doctor, and a reference. The reference is what makes delivery exactly-once: when a
batch is retried (an earlier attempt may have reached Google before the process died or the
answer was lost), the reference column is read first and rows already there are not appended
again. A header row is written when the sheet is empty.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from googleapiclient.errors import HttpError
from sqlmodel import Session

from voice_agent.alerts import StaffTexts
from voice_agent.clinic.model import Clinic
from voice_agent.errors import PermanentFailure
from voice_agent.google.api import GoogleApis
from voice_agent.integrations.outbox import Delivered, OutboxItem, Outcome
from voice_agent.store.tables import Appointment, Interaction, Patient

HEADER = [
    "Time",
    "Patient",
    "Phone",
    "Kind",
    "Details",
    "Channel",
    "Appointment",
    "Doctor",
    "Ref",
]
LAST_COLUMN = "I"


def localized_header(texts: StaffTexts, language: str) -> list[str]:
    """The column titles in the clinic's language (``sheets_header``, split on ``|``)."""
    if not texts.has(language, "sheets_header"):
        return HEADER
    return [cell.strip() for cell in texts.say(language, "sheets_header").split("|")]


FORMULA_START = ("=", "+", "-", "@")


def mask_phone(phone: str | None) -> str:
    """``+5511987654321`` → ``+55•••••••4321``: enough for staff to recognise, not to dial."""
    if not phone:
        return ""
    if len(phone) <= 7:
        return "•" * len(phone)
    return phone[:3] + "•" * (len(phone) - 7) + phone[-4:]


def safe_cell(value: str) -> str:
    """Text that Sheets will not run as a formula (``USER_ENTERED`` parses ``=…``)."""
    return "'" + value if value.startswith(FORMULA_START) else value


def _local(moment: datetime | None, clinic: Clinic) -> str:
    return moment.astimezone(clinic.tz).strftime("%Y-%m-%d %H:%M") if moment else ""


def _details(interaction: Interaction, clinic: Clinic, texts: StaffTexts | None) -> str:
    try:
        data: dict[str, Any] = json.loads(interaction.details or "{}")
    except ValueError:
        return ""
    parts: list[str] = []
    service_id = data.get("service_id") or (data.get("to") or {}).get("service_id")
    if service_id:
        service = clinic.service(str(service_id))
        parts.append(service.name(clinic.default_language) if service else str(service_id))
    if "from" in data and isinstance(data["from"], dict):
        before = data["from"].get("start")
        if before:
            when = _local(datetime.fromisoformat(before), clinic)
            language = clinic.default_language
            parts.append(texts.say(language, "sheets_from", when=when) if texts else f"from {when}")
    for key in ("via", "event", "reason", "message", "topic", "question"):
        if data.get(key):
            parts.append(f"{key}: {str(data[key])[:200]}")
    return "; ".join(parts)


def interaction_row(
    session: Session,
    interaction: Interaction,
    clinic: Clinic,
    *,
    mask: bool,
    texts: StaffTexts | None = None,
) -> list[str]:
    """The row for one interaction, built inside its transaction (the state it describes); the
    kind is written in the clinic's language ("remarcação", "перенос")."""
    kind = str(interaction.kind)
    if texts is not None and texts.has(clinic.default_language, f"kind_{kind}"):
        kind = texts.say(clinic.default_language, f"kind_{kind}")
    patient = session.get(Patient, interaction.patient_id) if interaction.patient_id else None
    appointment = (
        session.get(Appointment, interaction.appointment_id) if interaction.appointment_id else None
    )
    doctor = clinic.doctor(appointment.doctor_id) if appointment else None
    phone = patient.phone if patient else ""
    row = [
        _local(interaction.at, clinic),
        (patient.full_name or "") if patient else "",
        mask_phone(phone) if mask else phone,
        kind,
        _details(interaction, clinic, texts),
        interaction.channel,
        _local(appointment.start, clinic) if appointment else "",
        doctor.name if doctor else (appointment.doctor_id if appointment else ""),
        "ref-" + uuid.uuid4().hex[:16],
    ]
    return [safe_cell(cell) for cell in row]


class SheetsHandler:
    """Outbox handler of kind ``sheets``: appends the batch's rows in one request."""

    kind = "sheets"
    batch_size = 100

    def __init__(
        self,
        apis: GoogleApis,
        spreadsheet_id: str,
        tab: str | None = None,
        *,
        header: list[str] | None = None,
    ) -> None:
        self._apis = apis
        self._id = spreadsheet_id
        self._prefix = f"'{tab}'!" if tab else ""
        self._header_seen = False
        self._header = header if header and len(header) == len(HEADER) else HEADER

    async def deliver(self, items: list[OutboxItem]) -> list[Outcome]:
        return await self._apis.run(self._deliver, items)

    def _deliver(self, items: list[OutboxItem]) -> list[Outcome]:
        values = self._apis.sheets_values()
        rows = [item.payload["row"] for item in items]
        need_header = False
        if not self._header_seen or any(item.retried for item in items):
            refs = self._apis.execute(
                lambda: values.get(
                    spreadsheetId=self._id, range=f"{self._prefix}{LAST_COLUMN}:{LAST_COLUMN}"
                ),
                what="sheets read",
            ).get("values", [])
            need_header = not refs
            present = {cells[0] for cells in refs if cells}
            rows = [row for row in rows if row[-1] not in present]
        if need_header:
            rows = [self._header, *rows]
        if rows:
            try:
                self._apis.execute(
                    lambda: values.append(
                        spreadsheetId=self._id,
                        range=f"{self._prefix}A:{LAST_COLUMN}",
                        valueInputOption="USER_ENTERED",
                        insertDataOption="INSERT_ROWS",
                        body={"values": rows},
                    ),
                    what="sheets append",
                    retry=False,
                )
            except HttpError as error:
                if int(error.resp.status) in (400, 403, 404):
                    raise PermanentFailure(f"sheets append: HTTP {error.resp.status}") from error
                raise
        self._header_seen = True
        return [Delivered() for _ in items]
