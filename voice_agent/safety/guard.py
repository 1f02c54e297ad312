"""What happens when a red flag is heard, whatever the channel: the interaction log gets an
``emergency`` row and the staff get a WhatsApp alert with the patient's callback number.

The channel itself stops its booking flow, answers the patient (``EmergencyTexts``) and flags
its own record (the conversation row, or the call record). The alert is ``private``: it carries
a phone number for the staff, so it is never written to the log, and the hourly alert cap does
not hold it back. One alert per conversation or call per alert window (its kind names them).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

from voice_agent.alerts import StaffAlertDeps
from voice_agent.safety.detector import RedFlag
from voice_agent.safety.texts import EmergencyTexts
from voice_agent.store.tables import InteractionKind

if TYPE_CHECKING:
    from voice_agent.interactions import InteractionLog
    from voice_agent.patients.service import PatientService


class GuardDeps(StaffAlertDeps, Protocol):
    """The alert, plus the patient lookup and the interaction log the emergency row goes to."""

    @property
    def patients(self) -> PatientService: ...

    @property
    def interactions(self) -> InteractionLog: ...


logger = logging.getLogger(__name__)


class SafetyGuard:
    def __init__(self, services: GuardDeps) -> None:
        self.services = services
        self.texts = EmergencyTexts(services.settings.prompts_dir)

    async def raise_alarm(
        self,
        flag: RedFlag,
        *,
        channel: str,
        phone: str | None,
        where: tuple[str, str],
    ) -> bool:
        """Log the emergency and alert the staff; True if the staff will be told.

        ``where`` is ("call", CallSid) or ("conversation", its id): how staff find the record.
        Never raises: the patient's answer must not depend on the log or the alert.
        """
        clinic = self.services.clinic()
        patient = None
        try:
            if phone:
                patient = await self.services.patients.find_by_phone(phone)
            await self.services.interactions.record(
                InteractionKind.emergency,
                channel=channel,
                patient_id=patient.id if patient else None,
                details={
                    "source": "red_flag_guard",
                    "category": flag.category,
                    "rule": flag.rule,
                    where[0]: where[1],
                },
            )
        except Exception:
            logger.exception("could not log a red flag (%s)", flag.category)
        logger.warning("red flag %s (%s) on %s", flag.category, flag.rule, channel)
        if not clinic.emergency.alert_staff:
            return False
        message = self.texts.staff_alert(
            clinic,
            flag,
            channel=channel,
            phone=phone,
            name=patient.full_name if patient else None,
            where=where,
        )
        try:
            await self.services.alerter.alert(
                "emergency", message, dedup_key=where[1], private=True
            )
        except Exception:
            logger.exception("could not alert the staff of a red flag")
            return False
        return bool(clinic.doctor_whatsapp)
