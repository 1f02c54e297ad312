"""Realtime server events are typed before the bridge sees them (voice/openai/events.py)."""

from __future__ import annotations

import logging

import pytest

from voice_agent.voice.openai.events import (
    AudioDelta,
    FunctionCallDone,
    RealtimeError,
    ResponseDone,
    SpeechStarted,
    TranscriptionCompleted,
    parse_server_event,
)


def test_audio_delta_is_the_slim_type_with_its_three_fields() -> None:
    event = parse_server_event(
        {
            "type": "response.output_audio.delta",
            "event_id": "e1",
            "response_id": "resp_1",
            "item_id": "item_1",
            "output_index": 0,
            "content_index": 0,
            "delta": "//79",
        }
    )
    assert isinstance(event, AudioDelta)
    assert (event.item_id, event.response_id, event.delta) == ("item_1", "resp_1", "//79")
    assert "//79" not in repr(event)  # no audio in logs


def test_audio_delta_without_a_string_delta_carries_none() -> None:
    event = parse_server_event({"type": "response.output_audio.delta", "delta": 12})
    assert isinstance(event, AudioDelta) and event.delta == ""


def test_other_events_become_the_sdk_models() -> None:
    started = parse_server_event(
        {
            "type": "input_audio_buffer.speech_started",
            "event_id": "e2",
            "audio_start_ms": 120,
            "item_id": "item_2",
        }
    )
    assert isinstance(started, SpeechStarted) and started.audio_start_ms == 120
    call = parse_server_event(
        {
            "type": "response.function_call_arguments.done",
            "event_id": "e3",
            "response_id": "resp_2",
            "item_id": "item_3",
            "output_index": 0,
            "call_id": "call_1",
            "name": "find_slots",
            "arguments": '{"service": "cardiology"}',
        }
    )
    assert isinstance(call, FunctionCallDone) and call.name == "find_slots"
    done = parse_server_event(
        {
            "type": "response.done",
            "event_id": "e4",
            "response": {
                "id": "resp_2",
                "status": "failed",
                "status_details": {
                    "type": "failed",
                    "error": {"type": "server_error", "code": "internal"},
                },
            },
        }
    )
    assert isinstance(done, ResponseDone)
    assert done.response.status_details is not None
    assert done.response.status_details.error is not None
    assert done.response.status_details.error.code == "internal"
    error = parse_server_event(
        {
            "type": "error",
            "event_id": "e5",
            "error": {"type": "invalid_request_error", "message": "Unknown parameter"},
        }
    )
    assert isinstance(error, RealtimeError) and error.error.type == "invalid_request_error"


def test_events_the_call_ignores_parse_to_none() -> None:
    assert parse_server_event({"type": "rate_limits.updated", "rate_limits": []}) is None
    assert parse_server_event({"type": "no.such.event"}) is None
    assert parse_server_event({"type": 7}) is None
    assert parse_server_event({}) is None


def test_an_invalid_event_is_skipped_with_a_warning_that_names_the_field_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "Maria da Silva, 11 98765-4321"
    with caplog.at_level(logging.WARNING):
        event = parse_server_event(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "event_id": "e6",
                "item_id": "item_4",
                "content_index": "not a number",
                "transcript": secret,
            }
        )
    assert event is None
    assert "content_index" in caplog.text and secret not in caplog.text


def test_transcription_completed_carries_the_transcript() -> None:
    event = parse_server_event(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "event_id": "e7",
            "item_id": "item_5",
            "content_index": 0,
            "transcript": "Quero marcar uma consulta.",
            "usage": {"type": "duration", "seconds": 1.0},
        }
    )
    assert isinstance(event, TranscriptionCompleted)
    assert event.transcript == "Quero marcar uma consulta."
