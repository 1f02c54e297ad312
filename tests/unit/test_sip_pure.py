"""The pure pieces of the SIP transport: INVITE headers, transport choice, TwiML, configs."""

from __future__ import annotations

import pytest

from tests.conftest import make_settings
from voice_agent.voice.sip.control import accept_config, transfer_uri
from voice_agent.voice.sip.headers import number_of, read_sip_call
from voice_agent.voice.sip.transport import sip_dial_twiml, transport_for

SIP_URI = "sip:proj_abc@sip.api.openai.com;transport=tls"
CALL_SID = "CA" + "a" * 32


@pytest.mark.parametrize(
    ("value", "number"),
    [
        ('"Ana" <sip:+5511987654321@pstn.twilio.com>;tag=1', "+5511987654321"),
        ("<sip:+5511987654321@pstn.twilio.com;user=phone>", "+5511987654321"),
        ("<tel:+7-495-123-45-67>", "+74951234567"),
        ("sip:011987654321@10.0.0.1", "011987654321"),
        ("<sip:%2B5511987654321@host>", "+5511987654321"),
        ("<sip:anonymous@anonymous.invalid>", None),
        ("<sip:proj_abc@sip.api.openai.com>", None),
        ("", None),
        (None, None),
    ],
)
def test_the_number_in_a_from_or_to_header(value: str | None, number: str | None) -> None:
    assert number_of(value) == number


def test_an_invite_from_our_dial_carries_the_call_and_token() -> None:
    call = read_sip_call(
        "rtc_1",
        [
            ("from", "<sip:+5511987654321@x>"),
            ("TO", "<sip:+551134567800@y>"),
            ("x-va-call", CALL_SID),
            ("X-VA-Token", "abc.def"),
            ("Call-ID", "id@host"),
        ],
    )
    assert call.caller == "+5511987654321" and call.dialled == "+551134567800"
    assert call.twilio_call_sid == CALL_SID and call.token == "abc.def" and call.via_twilio_dial


def test_a_malformed_call_sid_or_a_missing_token_is_a_plain_trunk_call() -> None:
    bad = read_sip_call("rtc_1", [("X-VA-Call", "CA123; DROP"), ("X-VA-Token", "t")])
    assert bad.twilio_call_sid is None and not bad.via_twilio_dial
    no_token = read_sip_call("rtc_1", [("X-Twilio-CallSid", CALL_SID)])
    assert no_token.twilio_call_sid == CALL_SID and not no_token.via_twilio_dial


def _sip_settings(**overrides: object):
    return make_settings(
        openai_api_key="test-key-0000000000",
        openai_webhook_secret="whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=",
        openai_sip_uri=SIP_URI,
        **overrides,
    )


def test_the_transport_per_number_setting_and_default(sample_clinic) -> None:
    clinic = sample_clinic.model_copy(
        update={"voice_transport_numbers": {"+551134567800": "openai_sip"}}
    )
    assert transport_for(_sip_settings(), sample_clinic, "+551134567800") == "media_streams"
    assert transport_for(_sip_settings(), clinic, "+55 11 3456-7800") == "openai_sip"
    assert transport_for(_sip_settings(), clinic, "+551199999999") == "media_streams"
    forced = _sip_settings(voice_transport="media_streams")
    assert transport_for(forced, clinic, "+551134567800") == "media_streams"
    # Half configured (no webhook secret): calls stay on Media Streams rather than be lost.
    half = make_settings(openai_api_key="test-key-0000000000", voice_transport="openai_sip")
    assert transport_for(half, sample_clinic, None) == "media_streams"


def test_the_dial_twiml_sends_our_headers_and_comes_back() -> None:
    twiml = sip_dial_twiml(
        SIP_URI, CALL_SID, "tok.en-_", action_url="https://c.example/twilio/sip-dial-done"
    )
    assert 'action="https://c.example/twilio/sip-dial-done"' in twiml
    assert 'answerOnBridge="true"' in twiml
    assert f"<Sip>{SIP_URI}?X-VA-Call={CALL_SID}&amp;X-VA-Token=tok.en-_</Sip>" in twiml


def test_the_accept_config_is_the_bridges_without_audio_formats() -> None:
    tools = [{"type": "function", "name": "t", "description": "d", "parameters": {}}]
    config = accept_config(_sip_settings(), "Be kind.", tools)
    assert config["type"] == "realtime" and config["instructions"] == "Be kind."
    assert config["tools"] == tools
    assert "format" not in config["audio"]["input"] and "format" not in config["audio"]["output"]
    assert config["audio"]["input"]["turn_detection"]["type"] == "server_vad"


@pytest.mark.parametrize(
    ("number", "uri"),
    [
        ("+55 11 3456-7801", "tel:+551134567801"),
        ("sip:staff@pbx.example", "sip:staff@pbx.example"),
        ("(11) 3456-7801", "tel:1134567801"),
    ],
)
def test_the_transfer_target(number: str, uri: str) -> None:
    assert transfer_uri(number) == uri
