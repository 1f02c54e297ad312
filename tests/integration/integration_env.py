"""Helpers for the integration tests: a clinic file pointing at external calendars, services
wired to the local fakes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import Engine

from tests.conftest import make_settings
from voice_agent.alerts import Alerter
from voice_agent.clock import Clock
from voice_agent.services import Services, build_services
from voice_agent.settings import DEFAULT_CLINIC_FILE

SHEET_ID = "sheet-interactions"
ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "secret-token-0123456789"
WHATSAPP_FROM = "whatsapp:+14155238886"


def calendar_id(doctor_id: str) -> str:
    return f"{doctor_id}@group.calendar.google.com"


def clinic_file(tmp_path: Path, backend: str) -> Path:
    data: dict[str, Any] = yaml.safe_load(DEFAULT_CLINIC_FILE.read_text(encoding="utf-8"))
    data["calendar_backend"] = backend
    if backend == "google":
        for doctor in data["doctors"]:
            doctor["calendar_id"] = calendar_id(doctor["id"])
    path = tmp_path / f"clinic-{backend}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def google_settings(google_base: str, tmp_path: Path) -> dict[str, Any]:
    return {
        "clinic_file": clinic_file(tmp_path, "google"),
        "google_calendar_endpoint": f"{google_base}/calendar/v3/",
        "google_sheets_endpoint": f"{google_base}/",
        "google_sheet_id": SHEET_ID,
    }


def twilio_settings(twilio_base: str) -> dict[str, Any]:
    return {
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_api_base": twilio_base,
        "twilio_whatsapp_from": WHATSAPP_FROM,
    }


def build(
    engine: Engine, clock: Clock, *, alerter: Alerter | None = None, **overrides: Any
) -> Services:
    url = engine.url.render_as_string(hide_password=False)
    services = build_services(
        make_settings(url, **overrides), clock=clock, alerter=alerter, engine=engine
    )
    google = services.integrations.extras.get("google") if services.integrations else None
    if google is not None:
        google._base_delay = 0.01  # fast retries in tests
    return services
