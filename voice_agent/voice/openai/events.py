"""The Realtime server events a call acts on, as types: the bridge dispatches on the class of an
event, never on its ``type`` string.

Every event but one is validated into the SDK's own model (``openai.types.realtime``, the
members of ``RealtimeServerEvent``), looked up by its ``type`` (one model, not a try of each of
the union's ~40 members). The exception is the hot one, ``response.output_audio.delta`` (about
50 a second per call): it becomes an :class:`AudioDelta`, a three-slot object built from the
decoded JSON without validation, because the SDK model costs ~10 times more per event and the
bridge only forwards its base64 ``delta`` (checked for nothing but being a string). An event the
call does not act on parses to ``None`` at the cost of one dict lookup; one that fails its
model's validation is logged (its type and the failing field, no content) and skipped.
"""

from __future__ import annotations

import logging
from typing import Any, TypeAlias, get_args

from openai.types.realtime.conversation_item_input_audio_transcription_completed_event import (
    ConversationItemInputAudioTranscriptionCompletedEvent as TranscriptionCompleted,
)
from openai.types.realtime.conversation_item_input_audio_transcription_failed_event import (
    ConversationItemInputAudioTranscriptionFailedEvent as TranscriptionFailed,
)
from openai.types.realtime.input_audio_buffer_committed_event import (
    InputAudioBufferCommittedEvent as AudioCommitted,
)
from openai.types.realtime.input_audio_buffer_speech_started_event import (
    InputAudioBufferSpeechStartedEvent as SpeechStarted,
)
from openai.types.realtime.input_audio_buffer_speech_stopped_event import (
    InputAudioBufferSpeechStoppedEvent as SpeechStopped,
)
from openai.types.realtime.realtime_error_event import RealtimeErrorEvent as RealtimeError
from openai.types.realtime.response_audio_done_event import ResponseAudioDoneEvent as AudioDone
from openai.types.realtime.response_audio_transcript_done_event import (
    ResponseAudioTranscriptDoneEvent as AudioTranscriptDone,
)
from openai.types.realtime.response_created_event import ResponseCreatedEvent as ResponseCreated
from openai.types.realtime.response_done_event import ResponseDoneEvent as ResponseDone
from openai.types.realtime.response_function_call_arguments_done_event import (
    ResponseFunctionCallArgumentsDoneEvent as FunctionCallDone,
)
from pydantic import BaseModel, ValidationError

logger = logging.getLogger(__name__)

AUDIO_DELTA = "response.output_audio.delta"


class AudioDelta:
    """``response.output_audio.delta``: a chunk of the model's audio (base64 μ-law)."""

    __slots__ = ("delta", "item_id", "response_id")

    def __init__(self, item_id: str, response_id: str, delta: str) -> None:
        self.item_id = item_id
        self.response_id = response_id
        self.delta = delta

    def __repr__(self) -> str:  # no audio in reprs
        return f"AudioDelta(item_id={self.item_id!r}, {len(self.delta)} base64 chars)"


ServerEvent: TypeAlias = (
    AudioDelta
    | SpeechStarted
    | SpeechStopped
    | AudioCommitted
    | TranscriptionCompleted
    | TranscriptionFailed
    | ResponseCreated
    | ResponseDone
    | FunctionCallDone
    | AudioDone
    | AudioTranscriptDone
    | RealtimeError
)

_MODELS: tuple[type[BaseModel], ...] = (
    SpeechStarted,
    SpeechStopped,
    AudioCommitted,
    TranscriptionCompleted,
    TranscriptionFailed,
    ResponseCreated,
    ResponseDone,
    FunctionCallDone,
    AudioDone,
    AudioTranscriptDone,
    RealtimeError,
)


def _event_type(model: type[BaseModel]) -> str:
    (value,) = get_args(model.model_fields["type"].annotation)
    return str(value)


_BY_TYPE: dict[str, type[BaseModel]] = {_event_type(model): model for model in _MODELS}


def parse_server_event(data: dict[str, Any]) -> ServerEvent | None:
    """The typed event for a decoded server event; ``None`` for one the call ignores or that
    does not match its model."""
    kind = data.get("type")
    if kind == AUDIO_DELTA:
        delta = data.get("delta")
        return AudioDelta(
            str(data.get("item_id", "")),
            str(data.get("response_id", "")),
            delta if type(delta) is str else "",
        )
    model = _BY_TYPE.get(kind) if type(kind) is str else None
    if model is None:
        return None
    try:
        event: ServerEvent = model.model_validate(data)  # type: ignore[assignment]
    except ValidationError as exc:
        where = ".".join(str(part) for part in exc.errors(include_url=False)[0]["loc"])
        logger.warning("skipped a realtime %s event that does not validate (%s)", kind, where)
        return None
    return event


__all__ = [
    "AudioCommitted",
    "AudioDelta",
    "AudioDone",
    "AudioTranscriptDone",
    "FunctionCallDone",
    "RealtimeError",
    "ResponseCreated",
    "ResponseDone",
    "ServerEvent",
    "SpeechStarted",
    "SpeechStopped",
    "TranscriptionCompleted",
    "TranscriptionFailed",
    "parse_server_event",
]
