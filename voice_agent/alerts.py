"""Alerts to the doctor or staff: what happened, to whom, and what to do, in the clinic's language.

The texts live in ``prompts/<language>/staff_texts.yaml``; callers name a text and hand its
fields (:func:`alert_staff`). An alert about a patient carries the patient's name and callback
number, since calling back is its purpose, so an alert's text goes to the staff (WhatsApp, the
outbox) and never to the log: only its kind is logged.

The console alerter is the embedded default for tests and the CLI; WhatsApp delivery plugs in
behind the same protocol (``integrations/alerting.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from voice_agent.i18n import language_or_default
from voice_agent.settings import Settings

if TYPE_CHECKING:
    from voice_agent.clinic.model import Clinic
    from voice_agent.store.tables import Patient

logger = logging.getLogger(__name__)

STAFF_TEXTS = "staff_texts.yaml"


class Alerter(Protocol):
    async def alert(
        self,
        kind: str,
        message: str,
        *,
        dedup_key: str | None = None,
        private: bool = False,
    ) -> None:
        """Tell the clinic that something needs a person.

        Alerts of one ``kind`` are deduplicated over a window (one outage, one message); an alert
        about one patient passes its own ``dedup_key`` (the call or conversation), so two
        patients' requests are two alerts. ``private``: a patient waits on it (an emergency's
        callback number): no hourly cap holds it back. Alert texts are never logged.
        """
        ...


class StaffAlertDeps(Protocol):
    """What a staff alert needs: the texts (settings), the clinic's language, an alerter.
    ``Services`` satisfies it; so does any narrower holder."""

    @property
    def settings(self) -> Settings: ...

    @property
    def clinic(self) -> Callable[[], Clinic]: ...

    @property
    def alerter(self) -> Alerter: ...


class ConsoleAlerter:
    """Keeps alerts in memory (tests, the CLI); logs only their kind."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def alert(
        self,
        kind: str,
        message: str,
        *,
        dedup_key: str | None = None,
        private: bool = False,
    ) -> None:
        self.sent.append((kind, message))
        logger.warning("ALERT %s (text kept for the staff, not logged)", kind)


class MissingText(KeyError):
    pass


class StaffTexts:
    """The staff-facing texts of one prompts folder: alerts, Sheets kinds, calendar notes."""

    def __init__(self, prompts_dir: Path) -> None:
        self._dir = prompts_dir

    def templates(self, language: str) -> dict[str, str]:
        return _load(self._dir / language_or_default(language) / STAFF_TEXTS)

    def has(self, language: str, key: str) -> bool:
        return key in self.templates(language)

    def say(self, language: str, key: str, /, **fields: Any) -> str:
        templates = self.templates(language)
        if key not in templates:
            raise MissingText(f"{language}: no staff text {key!r}")
        return " ".join(templates[key].format_map(_Blank(fields)).split())

    def language_name(self, language: str, patient_language: str | None) -> str:
        """The patient's language named in the staff's language ("russo", "английский")."""
        key = f"language_{language_or_default(patient_language)}"
        return self.templates(language).get(key, patient_language or "")

    def channel_name(self, language: str, channel: str) -> str:
        return self.templates(language).get(f"channel_{channel}", channel)

    def where(self, language: str, *, call_sid: str | None, conversation_id: str | None) -> str:
        """Where the staff can read the whole exchange."""
        if call_sid:
            return self.say(language, "where_call", call_sid=call_sid)
        if conversation_id:
            return self.say(language, "where_conversation", conversation_id=conversation_id)
        return ""

    def patient_fields(
        self, language: str, patient: Patient | None, phone: str | None
    ) -> dict[str, str]:
        """``name``, ``phone`` and ``language`` of a patient, with words for what is unknown."""
        templates = self.templates(language)
        name = patient.full_name if patient is not None and patient.full_name else None
        number = phone or (patient.phone if patient is not None else None)
        return {
            "name": name or templates.get("unknown_name", "?"),
            "first_name": (name or templates.get("unknown_name", "?")).split()[0],
            "phone": number or templates.get("unknown_phone", "?"),
            "language": (
                self.language_name(language, patient.language)
                if patient is not None and patient.language
                else templates.get("unknown_language", "?")
            ),
        }


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


@cache
def _load(path: Path) -> dict[str, str]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of text keys to templates")
    return {str(k): str(v) for k, v in data.items()}


def staff_language(services: StaffAlertDeps) -> str:
    """Staff texts are in the clinic's language."""
    return language_or_default(services.clinic().default_language)


async def alert_staff(
    services: StaffAlertDeps, key: str, /, *, dedup_key: str | None = None, **fields: Any
) -> str:
    """Render the staff text ``key`` in the clinic's language and alert it; returns the text."""
    texts = StaffTexts(services.settings.prompts_dir)
    text = texts.say(staff_language(services), key, **fields)
    await services.alerter.alert(key, text, dedup_key=dedup_key)
    return text


async def alert_patient_request(
    services: StaffAlertDeps,
    key: str,
    *,
    patient: Patient | None,
    phone: str | None,
    channel: str,
    call_sid: str | None = None,
    conversation_id: str | None = None,
    **fields: Any,
) -> str:
    """A request the staff must answer (hand-over, callback, a question we could not answer):
    who (name, callback number, language), what they asked, on which channel, where to read it."""
    texts = StaffTexts(services.settings.prompts_dir)
    language = staff_language(services)
    details = texts.patient_fields(language, patient, phone)
    spoken = fields.pop("patient_language", None)
    if spoken:  # the language of this conversation, which beats the one on file
        details["language"] = texts.language_name(language, str(spoken))
    return await alert_staff(
        services,
        key,
        dedup_key=call_sid or conversation_id,
        channel=texts.channel_name(language, channel),
        where=texts.where(language, call_sid=call_sid, conversation_id=conversation_id),
        **details,
        **fields,
    )
