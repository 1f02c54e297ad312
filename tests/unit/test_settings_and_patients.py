"""Settings fail at start naming the setting; patient data is validated at the boundary."""

from __future__ import annotations

from datetime import date

import pytest

from voice_agent.errors import ConfigurationError, InvalidPatientData
from voice_agent.i18n import say_money, say_when
from voice_agent.patients.service import (
    check_birth_date,
    mask_phone,
    normalize_email,
    normalize_name,
    normalize_phone,
)
from voice_agent.settings import load_settings


def test_defaults_need_no_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VOICE_AGENT_DATABASE_URL", "PORT", "OPENAI_API_KEY", "TWILIO_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.database_url.startswith("sqlite")
    assert not settings.openai_enabled and not settings.twilio_enabled


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"VOICE_AGENT_TIMEZONE": "Nowhere/City"}, "VOICE_AGENT_TIMEZONE"),
        ({"VOICE_AGENT_DATABASE_URL": "mysql://x"}, "VOICE_AGENT_DATABASE_URL"),
        ({"VOICE_AGENT_PUBLIC_URL": "clinic.example"}, "VOICE_AGENT_PUBLIC_URL"),
        ({"PORT": "eighty"}, "PORT"),
        ({"TWILIO_ACCOUNT_SID": "AC123"}, "TWILIO_AUTH_TOKEN"),
        ({"VOICE_AGENT_HOLD_MINUTES": "0"}, "VOICE_AGENT_HOLD_MINUTES"),
    ],
)
def test_misconfiguration_names_the_setting(
    env: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert named in str(caught.value)


def test_vendor_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("VOICE_AGENT_REALTIME_MODEL", "gpt-realtime-mini")
    settings = load_settings()
    assert settings.openai_enabled and settings.openai_base_url == "http://127.0.0.1:9/v1"
    assert settings.realtime_model == "gpt-realtime-mini"


def test_phones_are_normalized_in_the_clinic_region() -> None:
    assert normalize_phone("(11) 98765-4321", "BR") == "+5511987654321"
    assert normalize_phone("whatsapp:+5511987654321", "BR") == "+5511987654321"
    assert normalize_phone("8 916 123-45-67", "RU") == "+79161234567"
    for bad in ("12345", "hello", ""):
        with pytest.raises(InvalidPatientData):
            normalize_phone(bad, "BR")
    assert mask_phone("+5511987654321") == "+55*******4321"


def test_emails_names_and_birth_dates() -> None:
    assert normalize_email(" Maria@Example.COM ") == "Maria@example.com"
    with pytest.raises(InvalidPatientData):
        normalize_email("maria@")
    assert normalize_name("  Maria   da  Silva ") == "Maria da Silva"
    with pytest.raises(InvalidPatientData):
        normalize_name("12")
    today = date(2026, 11, 23)
    with pytest.raises(InvalidPatientData):
        check_birth_date(date(2027, 1, 1), today)
    with pytest.raises(InvalidPatientData):
        check_birth_date(date(1850, 1, 1), today)


def test_dates_and_prices_are_said_in_each_language(sample_clinic) -> None:
    moment = __import__("datetime").datetime(2026, 11, 24, 14, 30, tzinfo=sample_clinic.tz)
    assert say_when(moment, "pt-BR") == "terça-feira, 24 de novembro, às 14:30"
    assert say_when(moment, "ru") == "вторник, 24 ноября, в 14:30"
    assert say_when(moment, "en") == "Tuesday, November 24 at 2:30 pm"
    assert say_money(1450, "BR") == "R$ 1.450,00"
    assert say_money(3500, "RU") == "3 500 ₽"
