"""One entry for every text channel: ``ConversationService.handle(channel, session, text, phone)``.

It loads the persisted state, settles the language, runs a turn with the OpenAI loop when it is
configured and with the offline receptionist otherwise (or when OpenAI fails during the turn),
saves the state and returns a ``Reply``. Every channel (WhatsApp/SMS, web chat, the terminal,
no-AI voice) goes through here, so they all share the tool layer and the same memory.

Safety first: every message goes through the red-flag detector before any engine sees it. On a
red flag the booking flow stops (holds released, the request forgotten), the patient gets the
emergency number in their language, the staff are alerted and the conversation is flagged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from voice_agent.conversation.language import detect_language, proper_names
from voice_agent.conversation.offline.dialogue import Dialogue, Turn
from voice_agent.conversation.offline.replies import Replies
from voice_agent.conversation.state import ConversationState, ConversationStore
from voice_agent.conversation.streaming import TurnListener
from voice_agent.conversation.turn_log import ToolTrace, TurnLog, TurnRecord
from voice_agent.conversation.turn_store import TurnStore
from voice_agent.errors import InvalidPatientData
from voice_agent.i18n import language_or_default
from voice_agent.metrics import TURNS
from voice_agent.patients.service import Looked, OnFile, normalize_phone
from voice_agent.safety import RedFlag, default_detector
from voice_agent.safety.guard import SafetyGuard
from voice_agent.services import Services
from voice_agent.tools.catalog import build_registry, text_registry
from voice_agent.tools.context import ToolContext
from voice_agent.worklist.feed import noting_needs

if TYPE_CHECKING:
    from voice_agent.conversation.openai_text import ResponsesConversation
    from voice_agent.store.tables import Patient

logger = logging.getLogger(__name__)


@dataclass
class Reply:
    text: str
    language: str
    stage: str
    engine: str
    offers: list[dict[str, Any]] = field(default_factory=list)
    appointment: dict[str, Any] | None = None
    tool_calls: list[str] = field(default_factory=list)
    end: bool = False
    handoff: bool = False
    emergency: str | None = None
    """The red-flag category heard in the message, if any (the reply is the emergency advice)."""
    duration_ms: float = 0.0

    def public(self) -> dict[str, Any]:
        return {
            "reply": self.text,
            "language": self.language,
            "engine": self.engine,
            "state": {
                "stage": self.stage,
                "offers": self.offers,
                "appointment": self.appointment,
            },
            "tool_calls": self.tool_calls,
            "end": self.end,
            "handoff": self.handoff,
            "emergency": self.emergency,
        }


class _Locks:
    """One lock per conversation, so two messages of one patient never interleave."""

    def __init__(self, size: int = 4096) -> None:
        self._locks: OrderedDict[str, asyncio.Lock] = OrderedDict()
        self._size = size

    def get(self, key: str) -> asyncio.Lock:
        lock = self._locks.pop(key, None) or asyncio.Lock()
        self._locks[key] = lock
        while len(self._locks) > self._size:
            oldest, old_lock = next(iter(self._locks.items()))
            if old_lock.locked():
                break
            self._locks.pop(oldest)
        return lock


class ConversationService:
    def __init__(self, services: Services, *, use_llm: bool | None = None) -> None:
        settings = services.settings
        self.services = services
        self.registry = text_registry(build_registry(settings.tool_timeout_seconds))
        self.replies = Replies(settings.prompts_dir)
        self.offline = Dialogue(self.registry, self.replies)
        self.offline.warm_up(services.clinic())
        self.store = ConversationStore(services.engine)
        self.detector = default_detector()
        self.guard = SafetyGuard(services)
        self.turn_log = TurnLog(services.engine, services.worklist)
        self.turn_store = TurnStore(services.engine, self.store, self.turn_log, services.patients)
        self._locks = _Locks()
        self.llm: ResponsesConversation | None = None
        if settings.openai_enabled if use_llm is None else use_llm:
            from voice_agent.conversation.openai_text import ResponsesConversation

            self.llm = ResponsesConversation(settings, self.registry)

    async def handle(
        self,
        channel: str,
        session_key: str,
        text: str,
        *,
        phone: str | None = None,
        phone_verified: bool = False,
        language: str | None = None,
        listener: TurnListener | None = None,
    ) -> Reply:
        """Answer one message; ``phone`` is the caller, ``phone_verified`` when the carrier
        vouches for it (WhatsApp, SMS, caller id): a typed or spoken number never is.
        ``listener`` hears the OpenAI reply as it is written (the web chat's stream)."""
        started = time.perf_counter()
        arrived = self.services.clock.now()
        trace = ToolTrace()
        async with self._locks.get(f"{channel}\x00{session_key}"):
            key = self.store.key(channel, session_key)
            read = functools.partial(
                self.turn_store.read,
                key,
                channel,
                phone=self._caller_e164(phone),
                verified=phone_verified,
                with_patient=self.llm is not None,  # the OpenAI instructions name the caller
            )
            # Submitted at once: the checks that need no state run while a worker thread reads.
            reading = asyncio.get_running_loop().run_in_executor(None, read)
            try:
                flag = self.red_flag(text)
                detected = detect_language(text, proper_names(self.services.clinic()))
            finally:
                state, looked, open_work = await reading
            on_file = looked.on_file if looked is not None else None
            language_before = state.language
            self._settle_language(state, text, detected, language, on_file)
            # Needs recorded in the turn (a hand-over, a red flag) open items to fill.
            with noting_needs() as needs:
                if flag is not None:
                    turn = await self._emergency(state, text, flag, channel, session_key)
                    engine = "safety"
                else:
                    turn, engine, looked = await self._answer(
                        state, text, channel, session_key, trace, listener, looked
                    )
            state.turns += 1
            record = TurnRecord(
                conversation_id=state.conversation_id,
                channel=channel,
                at=arrived,
                text=text,
                reply=turn.text,
                engine=engine,
                language=state.language,
                language_before=language_before,
                phone=state.phone,
                tools=trace.calls,
                emergency=flag.category if flag is not None else None,
                handoff=turn.handoff,
                patient=looked,
                fill_contact=open_work or state.conversation_id in needs,
            )
            flagged_at = self.services.clock.now() if flag is not None else None
            await asyncio.to_thread(self.turn_store.write, key, state, record, flagged_at)
        TURNS.labels(channel, engine).inc()
        shown = state.offers if state.stage in ("offering", "confirm") else []
        return Reply(
            text=turn.text,
            language=state.language or "en",
            stage=state.stage,
            engine=engine,
            offers=shown,
            appointment=turn.changed,
            tool_calls=turn.tool_calls,
            end=turn.end,
            handoff=turn.handoff,
            emergency=flag.category if flag is not None else None,
            duration_ms=(time.perf_counter() - started) * 1000,
        )

    async def _answer(
        self,
        state: ConversationState,
        text: str,
        channel: str,
        session_key: str,
        trace: ToolTrace,
        listener: TurnListener | None,
        looked: Looked | None,
    ) -> tuple[Turn, str, Looked | None]:
        """The receptionist's turn with the channel's caller; returns it, the engine that
        answered and who is on file for the caller as the turn leaves it (``None``: unknown)."""
        on_file = looked.on_file if looked is not None else None
        ctx = ToolContext(
            services=self.services,
            channel=channel,
            conversation_id=state.conversation_id,
            caller_phone=state.phone,
            language=state.language or "en",
            phone_verified=state.phone_verified and state.phone is not None,
            call_sid=session_key if channel == "voice" else None,  # the no-AI line's call
            recorder=trace,
            known_patient_id=on_file.id if on_file is not None else None,
        )
        with ctx.acting():
            turn, engine = await self._turn(state, text, ctx, listener, looked)
        _note_caller(state, ctx)
        if ctx.known_patient is not None:  # looked up (or created) in the turn
            looked = Looked(state.phone or "", _on_file(ctx.known_patient))
        elif trace.calls and on_file is None:
            looked = None  # a tool may have registered the caller: the record looks again
        return turn, engine, looked

    def red_flag(self, text: str) -> RedFlag | None:
        """The deterministic red-flag check every channel runs before anything else."""
        return self.detector.detect(text)

    async def _emergency(
        self, state: ConversationState, text: str, flag: RedFlag, channel: str, session_key: str
    ) -> Turn:
        """Stop the booking flow, alert the staff, give the emergency number. No engine runs."""
        await self.services.booking.release_holds(state.conversation_id)
        state.stage, state.goal = "idle", None
        state.offers, state.chosen, state.target, state.candidates = [], None, None, []
        state.misunderstood = 0
        # The no-AI phone line keys its conversation by CallSid: staff find it among the calls.
        where = (
            ("call", session_key) if channel == "voice" else ("conversation", state.conversation_id)
        )
        told = await self.guard.raise_alarm(flag, channel=channel, phone=state.phone, where=where)
        clinic = self.services.clinic()
        language = state.language or clinic.default_language
        parts = [self.guard.texts.patient_message(clinic, flag, language)]
        if told:
            parts.append(self.guard.texts.staff_told(language))
        turn = Turn(parts=[" ".join(parts)])
        if self.llm is not None:
            _remember(state, text, turn.text)
        return turn

    async def _turn(
        self,
        state: ConversationState,
        text: str,
        ctx: ToolContext,
        listener: TurnListener | None = None,
        looked: Looked | None = None,
    ) -> tuple[Turn, str]:
        if self.llm is not None and text.strip():
            turn = Turn()
            try:
                await self.llm.respond(state, text, ctx, turn, listener, looked=looked)
                return turn, "llm"
            except Exception as exc:  # any OpenAI failure: the offline receptionist takes the turn
                logger.warning(
                    "OpenAI turn failed (%s); the offline receptionist answers", type(exc).__name__
                )
                if turn.changed is not None:
                    # The action already happened through the tools: say so, do not redo it.
                    done = turn.changed
                    turn.parts = [
                        self.replies.say(ctx.language, done["action"], **done),
                    ]
                    state.stage, state.goal = "idle", None
                    _remember(state, text, turn.text)
                    return turn, "offline"
                calls = turn.tool_calls
                turn = Turn(tool_calls=list(calls))
        else:
            turn = Turn()
        offline = await self.offline.respond(state, text, ctx)
        offline.tool_calls = turn.tool_calls + offline.tool_calls
        if self.llm is not None:
            _remember(state, text, offline.text)
        return offline, "offline"

    def _caller_e164(self, phone: str | None) -> str | None:
        """The channel's caller number in E.164, or ``None`` when it is none or not valid."""
        if not phone:
            return None
        try:
            return _e164(phone, self.services.clinic().country)
        except InvalidPatientData:
            return None

    def _settle_language(
        self,
        state: ConversationState,
        text: str,
        detected: str | None,
        requested: str | None,
        on_file: OnFile | None,
    ) -> None:
        """``detected``: the message's language by ``detect_language`` (None: not sure)."""
        clinic = self.services.clinic()
        if requested:
            state.language = language_or_default(requested)
            state.language_confirmed = True
        if state.language is None:
            known = on_file.language if on_file is not None else None  # read with the state
            state.language = detected or known or clinic.default_language
        elif detected and detected != state.language and _long_enough(text, detected):
            state.language = detected


@lru_cache(maxsize=4096)
def _e164(phone: str, country: str) -> str:
    """``normalize_phone`` costs a few tenths of a millisecond and runs on every message."""
    return normalize_phone(phone, country)


def _note_caller(state: ConversationState, ctx: ToolContext) -> None:
    """Carry the turn's caller into the state (a phone claimed in the turn replaces it)."""
    state.phone = ctx.caller_phone
    state.phone_verified = ctx.phone_verified and ctx.caller_phone is not None


def _on_file(patient: Patient) -> OnFile:
    return OnFile(patient.id, patient.full_name, patient.language)


def _long_enough(text: str, detected: str) -> bool:
    return detected == "ru" or len(text.split()) >= 2


def _remember(state: ConversationState, text: str, reply: str) -> None:
    """Keep the LLM's history complete when the offline receptionist answered a turn."""
    state.history.append({"role": "user", "content": text[:2000]})
    state.history.append({"role": "assistant", "content": reply})
    state.trim_history()
