"""The clinic's emergency section (per-country defaults, its own numbers and words) and the
texts the guard builds from it, in the patient's and the clinic's language."""

from __future__ import annotations

import pytest

from voice_agent.clinic import Clinic
from voice_agent.clinic.model import EmergencyPolicy
from voice_agent.safety import RedFlag
from voice_agent.safety.rules import CATEGORIES
from voice_agent.safety.texts import EmergencyTexts
from voice_agent.settings import Settings

CHEST = RedFlag("chest_pain", "pt-chest-pain", "pt-BR")
SUICIDE = RedFlag("suicide", "pt-suicide-intent", "pt-BR")


@pytest.fixture(scope="module")
def texts() -> EmergencyTexts:
    return EmergencyTexts(Settings().prompts_dir)


def test_emergency_numbers_default_per_country_and_the_clinic_may_set_its_own(
    sample_clinic: Clinic,
) -> None:
    assert sample_clinic.emergency_number == "192"
    assert sample_clinic.emergency.crisis_line == "188"
    assert sample_clinic.emergency.service["pt-BR"] == "SAMU"
    russian = EmergencyPolicy.for_country("RU", "103")  # the legacy field named the ambulance
    assert (russian.number, russian.ambulance, russian.crisis_line) == ("112", "103", None)
    assert EmergencyPolicy.for_country("DE").number == "112"
    data = sample_clinic.model_dump()
    data.pop("emergency")
    data["emergency_number"] = "190"
    assert Clinic.model_validate(data).emergency.number == "190"
    data["emergency"] = {"number": "192", "message": {"pt-BR": "Ligue {number}"}}
    with pytest.raises(ValueError, match="emergency_number"):
        Clinic.model_validate(data)
    data.pop("emergency_number")
    own = Clinic.model_validate(data)
    assert own.emergency_number == "192" and own.emergency.message["pt-BR"] == "Ligue {number}"
    data["emergency"] = {"number": "not a number"}
    with pytest.raises(ValueError):
        Clinic.model_validate(data)


def test_patient_messages_in_each_language(texts: EmergencyTexts, sample_clinic: Clinic) -> None:
    pt = texts.patient_message(sample_clinic, CHEST, "pt-BR")
    assert "SAMU (192)" in pt and "pronto-socorro" in pt
    crisis = texts.patient_message(sample_clinic, SUICIDE, "pt-BR")
    assert "CVV no 188" in crisis and "192" in crisis
    assert "192" in texts.patient_message(sample_clinic, CHEST, "en")
    assert "192" in texts.patient_message(sample_clinic, CHEST, "ru")


def test_russian_numbers_and_a_missing_crisis_line(
    texts: EmergencyTexts, sample_clinic: Clinic
) -> None:
    data = sample_clinic.model_dump()
    data.pop("emergency")
    data.pop("emergency_number")
    data["country"] = "RU"
    data["phone"] = "+74951234567"
    data["staff_phone"] = "+74951234568"
    data["doctor_whatsapp"] = None
    russian = Clinic.model_validate(data)
    medical = texts.patient_message(russian, CHEST, "ru")
    assert "112" in medical and "103" in medical
    crisis = texts.patient_message(russian, SUICIDE, "ru")
    assert "112" in crisis and "188" not in crisis


def test_staff_alert_is_in_the_clinics_language_with_the_callback_number(
    texts: EmergencyTexts, sample_clinic: Clinic
) -> None:
    alert = texts.staff_alert(
        sample_clinic,
        SUICIDE,
        channel="whatsapp",
        phone="+5511987650000",
        name="Ana Lima",
        where=("conversation", "conv-1"),
    )
    assert alert.startswith("🚨 Possível emergência (pensamentos suicidas")
    assert "+5511987650000 (Ana Lima)" in alert and "WhatsApp" in alert and "conv-1" in alert


def test_voice_instruction_and_transfer_answers(
    texts: EmergencyTexts, sample_clinic: Clinic
) -> None:
    instruction = texts.voice_instruction(sample_clinic, CHEST, "ru")
    assert (
        "192" in instruction
        and "transfer_to_staff" in instruction
        and "боль в груди" in instruction
    )
    assert texts.is_yes("sim, por favor", "pt-BR") and texts.is_yes("1", "pt-BR")
    assert texts.is_yes("да", "ru") and not texts.is_yes("não", "pt-BR")


@pytest.mark.parametrize("language", ["pt-BR", "en", "ru"])
def test_every_red_flag_category_is_named_for_the_staff(language: str) -> None:
    """The staff alert and the call's instruction name the danger; a category without a label
    would be named by its id ("blood_pressure") in the clinic's WhatsApp."""
    texts = EmergencyTexts(Settings().prompts_dir)
    for category in CATEGORIES:
        label = texts.category(RedFlag(category, "rule", language), language)
        assert label and label != category, (language, category)
