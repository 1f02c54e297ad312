"""Secrets refused at start, the rate-limit buckets, the log mask (pure parts)."""

from __future__ import annotations

import logging

import pytest
from typer.testing import CliRunner

from voice_agent.cli import app as cli
from voice_agent.cli.context import CliRuntime
from voice_agent.errors import ConfigurationError
from voice_agent.logging_setup import call_scope, install_log_privacy, mask_text
from voice_agent.settings import load_settings
from voice_agent.web.limits import Rate, TokenBuckets

STRONG = "s3cr3t-" + "x" * 25
SECRET_VARIABLES = {
    "TWILIO_AUTH_TOKEN",
    "VOICE_AGENT_CHAT_API_TOKEN",
    "VOICE_AGENT_CALL_TOKEN_SECRET",
}


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": ""}, "TWILIO_AUTH_TOKEN"),
        (
            {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "tw1li0-sh0rt"},
            "TWILIO_AUTH_TOKEN",
        ),
        ({"VOICE_AGENT_CHAT_API_TOKEN": ""}, "VOICE_AGENT_CHAT_API_TOKEN"),
        ({"VOICE_AGENT_CHAT_API_TOKEN": "   "}, "VOICE_AGENT_CHAT_API_TOKEN"),
        ({"VOICE_AGENT_CHAT_API_TOKEN": "letmein"}, "VOICE_AGENT_CHAT_API_TOKEN"),
        ({"VOICE_AGENT_CALL_TOKEN_SECRET": "abc"}, "VOICE_AGENT_CALL_TOKEN_SECRET"),
        ({"OPENAI_API_KEY": ""}, "OPENAI_API_KEY"),
        ({"VOICE_AGENT_CLINIC_API_AUTH_HEADER": " "}, "VOICE_AGENT_CLINIC_API_AUTH_HEADER"),
        ({"VOICE_AGENT_HOST": "0.0.0.0"}, "VOICE_AGENT_CHAT_API_TOKEN"),
    ],
)
def test_empty_or_short_secrets_are_refused_by_name(
    env: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert named in message and "\n" not in message
    for key, value in env.items():  # the error names the variable, never the secret
        if key in SECRET_VARIABLES and len(value.strip()) > 3:
            assert value not in message


def test_strong_secrets_and_a_public_bind_with_a_token_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "1" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("VOICE_AGENT_HOST", "0.0.0.0")
    monkeypatch.setenv("VOICE_AGENT_CHAT_API_TOKEN", STRONG)
    settings = load_settings()
    assert settings.twilio_enabled and settings.chat_api_token is not None


def test_serve_on_a_public_address_needs_the_chat_token(tmp_path) -> None:
    runtime = CliRuntime()
    runtime.settings = load_settings(database_url=f"sqlite:///{tmp_path / 'x.db'}")
    result = CliRunner().invoke(cli, ["serve", "--host", "0.0.0.0"], obj=runtime)
    assert result.exit_code != 0
    assert "VOICE_AGENT_CHAT_API_TOKEN" in result.output
    assert "Traceback" not in result.output


def test_token_buckets_allow_a_burst_then_refill_at_the_rate() -> None:
    now = [0.0]
    buckets = TokenBuckets(Rate(burst=3, per_second=0.5), clock=lambda: now[0])
    assert [buckets.take("a") for _ in range(3)] == [None, None, None]
    assert buckets.take("a") == pytest.approx(2.0)  # one token comes back every 2 s
    assert buckets.take("b") is None  # other clients keep their own bucket
    now[0] = 2.0
    assert buckets.take("a") is None
    assert buckets.take("a") == pytest.approx(2.0)


def test_token_buckets_forget_the_oldest_clients_beyond_their_bound() -> None:
    buckets = TokenBuckets(Rate(burst=1, per_second=0.001), max_keys=100, clock=lambda: 0.0)
    for index in range(1000):
        buckets.take(f"client-{index}")
    assert len(buckets._buckets) == 100


@pytest.mark.parametrize(
    "text",
    [
        "caller +5511987654321 said hi",
        "whatsapp:+5511987654321",
        "(11) 98765-4321 called",
        "+55 11 98765-4321",
        "raw 5511987654321 in a row",
        "mail maria.silva@example.com now",
        "GET /Messages.json?To=whatsapp%3A%2B5511987654321",
    ],
)
def test_the_log_mask_hides_phones_and_emails(text: str) -> None:
    masked = mask_text(text)
    for secret in ("98765", "987654321", "maria.silva", "example.com"):
        assert secret not in masked


def test_the_log_mask_keeps_ids_dates_and_times() -> None:
    text = "call CA11111111111111111111111111111111 at 2026-11-24T09:00:00+00:00 took 1234 ms"
    assert mask_text(text) == text


def test_every_record_is_masked_and_names_its_call(caplog: pytest.LogCaptureFixture) -> None:
    install_log_privacy()
    logger = logging.getLogger("tests.privacy")
    with caplog.at_level(logging.DEBUG), call_scope("CA" + "5" * 32):
        logger.info("patient %s wrote from %s", "maria@example.com", "+5511987654321")
        try:
            raise ValueError("duplicate key (phone)=(+5511987654321)")
        except ValueError:
            logger.exception("write failed")
    text = caplog.text
    assert "987654321" not in text and "maria@example.com" not in text
    assert all(record.call_id == "CA" + "5" * 32 for record in caplog.records)
    assert "duplicate key" in text  # the traceback is kept, its values masked


def test_uvicorn_access_lines_lose_their_query_string(caplog: pytest.LogCaptureFixture) -> None:
    install_log_privacy()
    access = logging.getLogger("uvicorn.access")
    with caplog.at_level(logging.INFO, logger="uvicorn.access"):
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "203.0.113.4:5000",
            "GET",
            "/api/slots?service=x&phone=%2B5511987654321",
            "1.1",
            200,
        )
    assert '"GET /api/slots HTTP/1.1" 200' in caplog.text
    assert "5511987654321" not in caplog.text


def test_a_chat_session_id_that_looks_like_a_phone_is_masked_in_the_call_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_log_privacy()
    with caplog.at_level(logging.INFO), call_scope("web:5511987654321"):
        logging.getLogger("tests.privacy").info("turn")
    assert "987654321" not in caplog.records[0].call_id
