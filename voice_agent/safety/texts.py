"""What the guard says on a red flag, from ``prompts/<language>/emergency.yaml`` and the clinic's
``emergency`` section (its numbers, and its own wording when it set one)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from voice_agent.clinic.model import Clinic
from voice_agent.i18n import language_or_default
from voice_agent.safety.detector import RedFlag
from voice_agent.safety.normalize import fold


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


@cache
def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    return data


class EmergencyTexts:
    def __init__(self, prompts_dir: Path) -> None:
        self._dir = prompts_dir

    def _texts(self, language: str) -> dict[str, Any]:
        return _load(self._dir / language_or_default(language) / "emergency.yaml")

    def _say(self, language: str, key: str, **fields: Any) -> str:
        return str(self._texts(language)[key]).format_map(_Fields(fields))

    def numbers(self, clinic: Clinic, language: str) -> dict[str, str]:
        policy = clinic.emergency
        language = language_or_default(language)
        service = policy.service.get(language, "")
        values = {
            "number": policy.number,
            "service": service,
            "ambulance": policy.ambulance or "",
            "crisis_line": policy.crisis_line or "",
            "crisis_service": policy.crisis_service.get(language, ""),
        }
        if policy.ambulance:
            call = self._say(language, "call_ambulance", **values)
        elif service:
            call = self._say(language, "call_service", **values)
        else:
            call = self._say(language, "call", **values)
        crisis_key = "crisis_call" if values["crisis_service"] else "crisis_call_plain"
        return {**values, "call": call, "crisis_call": self._say(language, crisis_key, **values)}

    def patient_message(self, clinic: Clinic, flag: RedFlag, language: str) -> str:
        """The words the patient gets: the clinic's own if it set them, else ours."""
        values = self.numbers(clinic, language)
        policy = clinic.emergency
        language = language_or_default(language)
        if flag.crisis:
            own = policy.crisis_message.get(language)
            key = "crisis" if policy.crisis_line else "crisis_no_line"
        else:
            own = policy.message.get(language)
            key = "medical"
        if own:
            return own.format_map(_Fields(values))
        return self._say(language, key, **values)

    def staff_told(self, language: str) -> str:
        return self._say(language, "staff_told")

    def category(self, flag: RedFlag, language: str) -> str:
        return str(self._texts(language)["categories"].get(flag.category, flag.category))

    def voice_instruction(self, clinic: Clinic, flag: RedFlag, language: str) -> str:
        """For the Realtime model: say the number now, offer the transfer, book nothing."""
        return self._say(
            language,
            "voice_instruction",
            category=self.category(flag, language),
            reply=self.patient_message(clinic, flag, language),
        )

    def voice_offer_transfer(self, language: str) -> str:
        return self._say(language, "voice_offer_transfer")

    def voice_transferring(self, language: str) -> str:
        return self._say(language, "voice_transferring")

    def is_yes(self, text: str, language: str) -> bool:
        """A caller's answer to the transfer offer (speech or keypad)."""
        words = {fold(str(word)) for word in self._texts(language)["voice_yes"]}
        said = fold(text)
        return bool(said) and (said in words or any(w in said.split() for w in words))

    def staff_alert(
        self,
        clinic: Clinic,
        flag: RedFlag,
        *,
        channel: str,
        phone: str | None,
        name: str | None,
        where: tuple[str, str],
    ) -> str:
        """The WhatsApp alert to the staff, in the clinic's language, with the callback number."""
        language = clinic.default_language
        texts = self._texts(language)
        kind, ident = where
        return self._say(
            language,
            "alert",
            category=self.category(flag, language),
            channel=texts["channels"].get(channel, channel),
            phone=phone or self._say(language, "alert_no_phone"),
            name=self._say(language, "alert_name", name=name) if name else "",
            number=clinic.emergency.number,
            where=self._say(language, f"alert_where_{kind}", id=ident),
        )
