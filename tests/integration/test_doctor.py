"""`voice-agent doctor` against the local fakes of OpenAI, Twilio (REST and Content API), Google
(Calendar list, Sheets) and a clinic REST API: what works is one `ok` line, what is missing or
broken is one `FAIL` line saying what to fix, and the exit code is 1 when anything fails."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml
from typer.testing import CliRunner

from tests.conftest import make_settings
from tests.fakes.clinic_api_fake import ClinicApiFake
from tests.fakes.google_fake import GoogleFake
from tests.fakes.openai_responses import FakeOpenAIResponses
from tests.fakes.twilio_rest_fake import TwilioRestFake
from tests.integration.integration_env import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    SHEET_ID,
    calendar_id,
    clinic_file,
    google_settings,
    twilio_settings,
)
from voice_agent.cli import app
from voice_agent.cli.context import CliRuntime
from voice_agent.clock import FixedClock
from voice_agent.settings import DEFAULT_CLINIC_FILE, Settings

TEMPLATE = "HX" + "a" * 32
MISSING_TEMPLATE = "HX" + "b" * 32
NUMBER = "+551134567800"


def _prepare(settings: Settings, clock: FixedClock) -> None:
    """A set-up a person made: schema migrated, clinic file loaded."""
    args = ["clinic", "load", str(settings.clinic_file)]
    result = CliRunner().invoke(app, args, obj=CliRuntime(clock=clock, settings=settings))
    assert result.exit_code == 0, result.output


def _doctor(settings: Settings, clock: FixedClock) -> tuple[int, list[str]]:
    result = CliRunner().invoke(app, ["doctor"], obj=CliRuntime(clock=clock, settings=settings))
    assert "Traceback" not in result.output
    return result.exit_code, result.output.strip().splitlines()


async def test_doctor_checks_every_backend_and_names_what_is_missing(
    tmp_path: Path, clock: FixedClock
) -> None:
    doctors = yaml.safe_load(DEFAULT_CLINIC_FILE.read_text(encoding="utf-8"))["doctors"]
    with (
        FakeOpenAIResponses("gpt-4.1-mini") as openai,
        GoogleFake() as google,
        TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN, clock) as twilio,
    ):
        google.add_spreadsheet(SHEET_ID)
        for doctor in doctors[1:]:  # the first doctor never shared their calendar
            google.add_calendar(calendar_id(doctor["id"]))
        twilio.add_number(NUMBER)
        twilio.add_template(TEMPLATE, "Olá {{1}}")
        base = dict(
            **google_settings(google.base_url, tmp_path),
            **twilio_settings(twilio.base_url),
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=openai.base_url,
            twilio_from_number=NUMBER,
            whatsapp_confirmation_template_sid=TEMPLATE,
        )
        settings = make_settings(f"sqlite:///{tmp_path / 'doctor.db'}", **base)
        _prepare(settings, clock)
        code, lines = await asyncio.to_thread(_doctor, settings, clock)
        assert code == 1
        assert lines[0].startswith("ok   database: sqlite:///")
        assert lines[1].startswith("ok   clinic file: ")
        assert "ok   openai: key accepted; gpt-4.1-mini, gpt-realtime available" in lines
        assert f"ok   twilio number: {NUMBER} belongs to the account" in lines
        assert (
            "ok   whatsapp template: VOICE_AGENT_WHATSAPP_CONFIRMATION_TEMPLATE_SID "
            f"{TEMPLATE} exists"
        ) in lines
        unshared = [line for line in lines if line.startswith("FAIL google calendar")]
        assert len(unshared) == 1 and calendar_id(doctors[0]["id"]) in unshared[0]
        assert "is not shared with the service account" in unshared[0]
        assert f"ok   google sheet: {SHEET_ID} is reachable" in lines
        assert len([line for line in lines if line.startswith("ok   google calendar")]) == (
            len(doctors) - 1
        )

        # Wrong credentials and settings: each a FAIL line naming the setting.
        broken = make_settings(
            f"sqlite:///{tmp_path / 'doctor.db'}",
            **dict(
                base,
                OPENAI_API_KEY="sk-wrong",
                twilio_from_number="+551100000000",
                whatsapp_confirmation_template_sid=MISSING_TEMPLATE,
                google_sheet_id="no-such-sheet",
                realtime_model="gpt-realtime",
            ),
        )
        code, lines = await asyncio.to_thread(_doctor, broken, clock)
        assert code == 1
        text = "\n".join(lines)
        assert "FAIL openai: OPENAI_API_KEY refused or unreachable" in text
        assert (
            "FAIL twilio number: VOICE_AGENT_TWILIO_FROM_NUMBER +551100000000 is not a "
            "number of this account"
        ) in text
        assert f"{MISSING_TEMPLATE} does not exist in the Content API" in text
        assert "FAIL google sheet: VOICE_AGENT_GOOGLE_SHEET_ID no-such-sheet" in text


def test_doctor_on_the_embedded_defaults_and_a_bad_twilio_token(
    tmp_path: Path, clock: FixedClock
) -> None:
    with TwilioRestFake(ACCOUNT_SID, AUTH_TOKEN, clock) as twilio:
        settings = make_settings(f"sqlite:///{tmp_path / 'plain.db'}")
        code, lines = _doctor(settings, clock)
        assert code == 1 and "run `voice-agent db upgrade`" in lines[0]
        _prepare(settings, clock)
        code, lines = _doctor(settings, clock)
        assert code == 0 and lines[-1] == "everything configured works"
        assert "--   openai: OPENAI_API_KEY not set: the offline receptionist answers" in lines
        wrong = make_settings(
            f"sqlite:///{tmp_path / 'plain.db'}",
            **dict(
                twilio_settings(twilio.base_url), twilio_auth_token="wrong-token-but-long-enough"
            ),
        )
        code, lines = _doctor(wrong, clock)
        assert code == 1
        assert any(
            line.startswith("FAIL twilio: TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN refused")
            for line in lines
        )
    unreachable = make_settings("postgresql://postgres@127.0.0.1:9/none")
    code, lines = _doctor(unreachable, clock)
    assert code == 1 and lines[0].startswith("FAIL database: cannot reach the database")


def test_doctor_checks_the_clinic_api(tmp_path: Path, clock: FixedClock) -> None:
    with ClinicApiFake() as api:
        good = make_settings(
            f"sqlite:///{tmp_path / 'api.db'}",
            clinic_file=clinic_file(tmp_path, "clinic_api"),
            clinic_api_url=api.base_url,
            clinic_api_auth_header="Authorization: Bearer clinic-token",
        )
        _prepare(good, clock)
        code, lines = _doctor(good, clock)
        assert code == 0, lines
        assert f"ok   clinic api: {api.base_url} answers" in lines
        bad = good.model_copy(update={"clinic_api_auth_header": None})
        code, lines = _doctor(bad, clock)
        assert code == 1
        assert any(line.startswith("FAIL clinic api: ") for line in lines)
