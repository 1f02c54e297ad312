"""Script steps for the fake Realtime server: what the "model" says and what the caller said.

A script is a list of steps consumed in order. A response trigger (the client's
``response.create``, or server VAD with ``create_response``) plays the next
:class:`SpeakTurn` / :class:`FunctionCallTurn`; a committed caller turn takes its transcript
from the next :class:`UserTurn`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = ["FailedTurn", "FunctionCallTurn", "ResponseStep", "SpeakTurn", "Step", "UserTurn"]


@dataclass(frozen=True, slots=True)
class SpeakTurn:
    """An audio response: ``audio_ms`` of tone streamed as deltas, with this transcript."""

    transcript: str
    audio_ms: int = 1000


@dataclass(frozen=True, slots=True)
class FunctionCallTurn:
    """A response calling a tool; optionally preceded by a spoken preamble in the same response.

    The fake then expects ``conversation.item.create`` with a ``function_call_output`` for
    ``call_id`` before the client's next ``response.create``.
    """

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    call_id: str | None = None
    say: str | None = None
    say_audio_ms: int = 600


@dataclass(frozen=True, slots=True)
class FailedTurn:
    """A response that fails without output: ``response.done`` with status ``failed`` and the
    error in ``status_details``, as the API reports a server error inside a response."""

    error_type: str = "server_error"
    code: str | None = None


@dataclass(frozen=True, slots=True)
class UserTurn:
    """The transcript reported for the next committed caller utterance.

    ``transcript_delay`` seconds after the commit (0: at once). Transcription runs beside the
    response on the real API, so its event can arrive after the response's function call.
    """

    transcript: str
    transcript_delay: float = 0.0


ResponseStep: TypeAlias = SpeakTurn | FunctionCallTurn | FailedTurn
Step: TypeAlias = SpeakTurn | FunctionCallTurn | FailedTurn | UserTurn
