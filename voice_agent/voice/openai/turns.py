"""What both transports do with the caller's turns and the model's tool calls: the Media Streams
bridge and the SIP sideband differ in how the audio travels, not in this.

- :class:`CallerTurns`: each caller transcript is recorded, may switch the call's language
  (Cyrillic at once, pt-BR and English from two words on, as on the text channel) and goes
  through the red-flag detector first (tens of microseconds; each kind acted on once); a tool
  call waits (bounded) for the transcripts of what the caller just said, which may switch the
  language its result is told in.
- :func:`run_tool_call`: one function call through the tool registry, refused while a red flag
  stands if it books (the booking flow stopped at the emergency); says whether it booked and
  whether it failed inside (for the staff alert).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

from voice_agent.clinic.model import SUPPORTED_LANGUAGES
from voice_agent.conversation.language import detect_language
from voice_agent.safety import RedFlag, default_detector
from voice_agent.tools.context import ToolContext
from voice_agent.tools.registry import ToolRegistry
from voice_agent.voice.call_records import CallRecorder

logger = logging.getLogger(__name__)

TRANSCRIPT_WAIT = 1.0
"""A tool call waits this long at most for the transcript of what the caller just said (it runs
beside the response), so a caller who switched language gets tool results in that language."""
BOOKING_TOOLS = frozenset({"find_slots", "book_appointment", "reschedule_appointment"})
BOOKS = frozenset({"book_appointment", "reschedule_appointment"})


@dataclass
class Heard:
    """What one caller transcript changed: the call's language, a new red flag."""

    language: str | None = None
    red_flag: RedFlag | None = None


@dataclass
class CallerTurns:
    context: ToolContext
    recorder: CallRecorder
    red_flags: set[str] = field(default_factory=set)
    _due: dict[str, asyncio.Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._detector = default_detector()

    def committed(self, item_id: str) -> None:
        """The caller's audio became an item: its transcript is coming."""
        self._due.setdefault(item_id, asyncio.Event())

    def arrived(self, item_id: str) -> None:
        """Its transcript came (or failed): nothing to wait for any more."""
        due = self._due.pop(item_id, None)
        if due is not None:
            due.set()

    def forget(self) -> None:
        """The connection was replaced: transcripts still due will never come."""
        self._due.clear()

    async def settled(self) -> None:
        """Let the caller's pending transcripts arrive first (bounded)."""
        waiting = [asyncio.create_task(e.wait()) for e in self._due.values()]
        if not waiting:
            return
        _, pending = await asyncio.wait(waiting, timeout=TRANSCRIPT_WAIT)
        for task in pending:
            task.cancel()
        self._due.clear()  # a transcript that never came is not waited for again

    def heard(self, transcript: str) -> Heard:
        """Record what the caller said; switch the call's language; detect a new red flag."""
        self.recorder.event("caller", transcript)
        heard = Heard()
        detected = detect_language(transcript)
        if (
            detected is not None
            and detected != self.context.language
            and detected in SUPPORTED_LANGUAGES
            and (detected == "ru" or len(transcript.split()) >= 2)
        ):
            logger.info("caller language %s -> %s", self.context.language, detected)
            self.context.language = detected
            self.recorder.event("language", detected)
            heard.language = detected
        flag = self._detector.detect(transcript)
        if flag is not None and flag.category not in self.red_flags:
            self.red_flags.add(flag.category)
            self.recorder.event("safety", {"red_flag": flag.category, "rule": flag.rule})
            heard.red_flag = flag
        return heard


@dataclass(frozen=True)
class ToolRun:
    output: str
    """The ``function_call_output`` for the model (JSON)."""
    booked: bool = False
    failed: bool = False
    """An error inside the tool (not the model's fault): the staff are told."""


async def run_tool_call(
    registry: ToolRegistry,
    context: ToolContext,
    recorder: CallRecorder,
    name: str,
    arguments: str,
    *,
    red_flagged: bool,
) -> ToolRun:
    if red_flagged and name in BOOKING_TOOLS:
        # The booking flow stopped at the red flag: the model is told why, nothing runs.
        recorder.event("tool", {"name": name, "refused": "red flag"})
        refusal = {
            "error": "emergency: the caller described a possible emergency; do not book. "
            "Repeat the emergency number and offer the transfer to the clinic staff.",
            "emergency_number": context.services.clinic().emergency.number,
        }
        return ToolRun(json.dumps(refusal))
    result = await registry.dispatch(name, arguments, context)
    return ToolRun(
        result.to_json(),
        booked=result.ok and name in BOOKS,
        failed=not result.ok and result.error_code == "internal_error",
    )
