"""The core of the offline dialogue: ``Dialogue`` (the engine's entry) and ``Run``, one turn.

A turn reads the message (``nlu.parse``), lets the current stage take it (``stages.py``), else
the intents (below), and answers from reply templates filled with tool outputs. The flows live
in collaborators the run holds: ``booking`` (search, offer, read back, book), ``appointments``
(list, cancel, move, confirm) and ``answers`` (prices, insurances, doctors, hospitals).
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

from voice_agent.clinic.model import Clinic
from voice_agent.conversation.offline.dialogue import identity
from voice_agent.conversation.offline.dialogue.answers import ClinicAnswers
from voice_agent.conversation.offline.dialogue.appointments import Appointments
from voice_agent.conversation.offline.dialogue.booking import Booking
from voice_agent.conversation.offline.dialogue.stages import Stages
from voice_agent.conversation.offline.dialogue.turn import Turn, observe_tool
from voice_agent.conversation.offline.lexicon import LEXICONS
from voice_agent.conversation.offline.names import address
from voice_agent.conversation.offline.names import warm_up as warm_up_names
from voice_agent.conversation.offline.nlu import (
    Understanding,
    name_correction,
    parse,
    unknown_doctor,
    warm_up,
)
from voice_agent.conversation.offline.replies import Replies
from voice_agent.conversation.state import ConversationState
from voice_agent.store.tables import InteractionKind, Patient
from voice_agent.tools.context import ToolContext
from voice_agent.tools.registry import ToolRegistry, ToolResult

logger = logging.getLogger(__name__)

MAX_TEXT = 2000
MAX_QUESTION = 300
CHOICE_STAGES = ("offering", "pick_appointment", "confirm")


class Dialogue:
    """The offline receptionist: answers one message at a time through the tool registry."""

    def __init__(self, registry: ToolRegistry, replies: Replies) -> None:
        self.registry = registry
        self.replies = replies

    def warm_up(self, clinic: Clinic) -> None:
        """Load every reply file and compile the NLU's patterns now, not on a patient's turn."""
        for language in LEXICONS:
            self.replies.templates(language)
        warm_up(clinic)
        warm_up_names()

    async def respond(self, state: ConversationState, text: str, ctx: ToolContext) -> Turn:
        turn = Turn()
        run = Run(self, state, ctx, turn)
        await run.handle(text)
        return turn


class Run:
    """One turn of the dialogue: the state, the tool context and the reply, shared by the
    collaborators that handle stages, flows and answers."""

    def __init__(
        self, dialogue: Dialogue, state: ConversationState, ctx: ToolContext, turn: Turn
    ) -> None:
        self.d = dialogue
        self.state = state
        self.ctx = ctx
        self.turn = turn
        self.clinic: Clinic = ctx.services.clinic()
        self.today: date = ctx.services.clock.now().astimezone(self.clinic.tz).date()
        self.text = ""
        self.stages = Stages(self)
        self.booking = Booking(self)
        self.appointments = Appointments(self)
        self.answers = ClinicAnswers(self)

    @property
    def lang(self) -> str:
        return self.state.language or self.clinic.default_language

    def say(self, key: str, **fields: Any) -> None:
        self.turn.parts.append(self.d.replies.say(self.lang, key, **fields))

    def text_of(self, key: str, **fields: Any) -> str:
        return self.d.replies.say(self.lang, key, **fields)

    async def call(self, name: str, **arguments: Any) -> ToolResult:
        self.turn.tool_calls.append(name)
        result = await self.d.registry.dispatch(name, arguments, self.ctx)
        observe_tool(self.state, name, result)
        if not result.ok:
            logger.info("offline tool %s refused: %s", name, result.error_code)
        return result

    # The turn -------------------------------------------------------------------------------------

    async def handle(self, text: str) -> None:
        state = self.state
        stripped = text.strip()
        if not stripped:
            self.say("empty")
            self.reprompt()
            return
        if len(stripped) > MAX_TEXT:
            self.say("too_long")
            return
        self.text = stripped
        u = parse(
            stripped,
            self.lang,
            self.clinic,
            self.today,
            expecting_choice=state.stage in CHOICE_STAGES,
        )
        # A question we could not answer, offered to the staff last turn: "yes" passes it on.
        unanswered, state.unanswered = state.unanswered, None
        # Emergencies are not judged here: the red-flag guard (voice_agent/safety) answers them
        # before any engine runs, so a past symptom ("dor no peito que já passou") books normally.
        just_yes = u.has("yes") and not u.intents - {"yes", "thanks", "greeting"}
        if u.has("handoff") or (unanswered and just_yes):
            await self.handoff(question=unanswered)
            return
        if state.turns == 0 and not u.has("greeting", "handoff"):
            await self.greet_new_contact()
        corrected = name_correction(stripped, self.lang)
        if corrected and state.stage != "ask_name" and await self.patient_or_none() is not None:
            result = await self.call("update_patient", full_name=corrected)
            if result.ok:
                self.say("name_corrected", name=address(corrected, self.lang))
                self.reprompt()
                return
        if u.wish.invalid:
            self.say("not_a_date", date=u.wish.invalid)
            if state.stage in ("idle", "start", "offering", "confirm"):
                state.stage = "ask_wish"
            self.say("ask_wish")
            return
        if u.night is not None:
            self.say("closed_at_night", hour=u.night.strftime("%H:%M"), hours=self.hours())
        if await self.stages.by_stage(stripped, u):
            state.misunderstood = 0
            return
        if await self.by_intent(u):
            state.misunderstood = 0
            return
        await self.not_understood()

    async def not_understood(self) -> None:
        self.state.misunderstood += 1
        if self.state.misunderstood >= 3:
            self.say("not_understood_handoff", phone=self.clinic.phone)
        else:
            self.say("not_understood")
        self.reprompt(always=True)

    def reprompt(self, always: bool = False) -> None:
        """Ask again what the current stage waits for."""
        stage = self.state.stage
        if stage == "ask_phone":
            self.say("ask_phone")
        elif stage == "ask_name":
            self.say("ask_name")
        elif stage == "ask_email":
            self.say("ask_email_again")
        elif stage == "ask_service":
            self.say("ask_service", services=self.service_list())
        elif stage == "offering" and self.state.offers:
            self.say("which_option", count=len(self.state.offers))
        elif stage in ("confirm", "confirm_cancel"):
            self.say("yes_or_no")
        elif stage == "pick_appointment":
            self.say("which_appointment")
        elif stage == "ask_wish":
            self.say("ask_wish")
        elif stage == identity.STAGE:
            identity.reprompt(self)
        elif always:
            self.say("how_can_help")

    # Intents when no stage took the message -------------------------------------------------------

    async def by_intent(self, u: Understanding) -> bool:
        state = self.state
        if u.unknown_question:
            await self.unknown_question()
            return True
        handled = False
        if u.question:
            await self.answers.answer(u)
            handled = True
        elif u.doctor_id is None and (wrong := unknown_doctor(self.text, self.clinic)):
            self.say("unknown_doctor_named", doctor=wrong, doctors=self.doctor_list())
            state.doctor_id = None
            return True
        if u.has("cancel"):
            await self.appointments.start_change("cancel", u)
            return True
        if u.has("reschedule"):
            await self.appointments.start_change("reschedule", u)
            return True
        if u.has("confirm_attendance"):
            await self.appointments.start_change("confirm", u)
            return True
        if u.has("list"):
            await self.appointments.list_appointments()
            return True
        wants_booking = u.has("book") or (
            not handled and (u.service_id is not None or u.doctor_id is not None)
        )
        if wants_booking or (not handled and not u.wish.empty):
            state.goal = "book"
            self.booking.absorb(u)
            await self.booking.continue_booking()
            return True
        if handled:
            self.reprompt()
            if state.stage in ("idle", "start"):
                self.say("anything_else")
            return True
        if u.has("thanks", "bye"):
            self.say("goodbye")
            self.turn.end = u.has("bye") or state.stage in ("idle", "start")
            return True
        if u.has("greeting"):
            await self.greet(u)
            return True
        if u.has("yes", "no"):
            self.say("how_can_help")
            return True
        return False

    async def greet_new_contact(self) -> None:
        """A first message that starts with a request still gets a hello, if we do not know
        the patient yet (a known patient is greeted by name when he says hello)."""
        patient = await self.patient_or_none()
        if patient is None or not patient.full_name:
            self.say("greeting_new", clinic=self.clinic.name)

    async def greet(self, u: Understanding | None = None) -> None:
        patient = await self.patient_or_none()
        named = patient.full_name if patient is not None else None
        if named and await self.ctx.verified_by() != "unverified":
            name = address(named, self.lang)
            self.say("greeting_known", name=name, clinic=self.clinic.name)
        elif patient is not None and not named and self.state.stage in ("idle", "start"):
            # First contact: collect the name (and e-mail) before anything else.
            self.say("greeting_new", clinic=self.clinic.name)
            self.state.stage = "ask_name"
            if u is not None and u.name:  # "Oi, meu nome é Rafael Souza": the name is given
                await self.stages.on_name(self.text, u)
                return
            self.say("ask_name")
            return
        else:
            self.say("greeting_new", clinic=self.clinic.name)
        if self.state.stage not in ("idle", "start"):
            self.reprompt()
        else:
            self.state.stage = "idle"

    async def handoff(self, question: str | None = None) -> None:
        """Hand the patient to the staff; ``question`` is one the receptionist could not answer.
        The alert carries who asked, their callback number and the question: the staff calls
        back from it."""
        self.say("handoff", phone=self.clinic.phone)
        self.turn.handoff = True
        self.state.stage, self.state.goal = "idle", None
        details = {"reason": "patient asked for staff"}
        if question:
            details = {"reason": "question for the staff", "question": question[:200]}
        patient = await self.patient_or_none()
        await self.ctx.services.interactions.record(
            InteractionKind.transfer,
            channel=self.ctx.channel,
            patient_id=patient.id if patient else None,
            details=details,
        )
        await self.ctx.alert_staff(
            "handoff_question" if question else "handoff",
            patient,
            question=(question or self.text)[:MAX_QUESTION],
        )

    async def unknown_question(self) -> None:
        """An honest "I don't know" instead of a misunderstanding loop: offer to pass the
        question on (idle), or say how to reach the staff and go back to what we were doing."""
        state = self.state
        patient = await self.patient_or_none()
        await self.ctx.services.interactions.record(
            InteractionKind.information,
            channel=self.ctx.channel,
            patient_id=patient.id if patient else None,
            details={"topic": "unanswered", "question": self.text[:200]},
        )
        if state.stage in ("idle", "start"):
            state.unanswered = self.text[:MAX_QUESTION]
            state.stage = "idle"
            self.say("unknown_question", phone=self.clinic.phone)
        else:
            self.say("unknown_question_busy", phone=self.clinic.phone)
            self.reprompt()

    async def resume_goal(self) -> None:
        goal = self.state.goal
        if goal == "book":
            await self.booking.continue_booking()
        elif goal in ("cancel", "reschedule", "confirm"):
            await self.appointments.start_change(goal, None)
        elif goal == "list":
            await self.appointments.list_appointments()
        else:
            self.say("how_can_help")

    # Helpers the collaborators share --------------------------------------------------------------

    def ask_phone_first(self) -> bool:
        """Whether the flow must wait for the patient's number (then asked for) before a tool
        can look the patient up."""
        if self.state.phone is not None:
            return False
        self.state.stage = "ask_phone"
        self.say("ask_phone")
        return True

    def report_change(self, result: ToolResult, action: str, reply: str) -> None:
        """A booking, move, cancellation or confirmation the tool made: said to the patient and
        handed to the channel (``turn.changed``)."""
        done = result.output[action]
        self.turn.changed = {"action": action, **done}
        self.say(reply, **done)

    def tool_problem(self, result: ToolResult) -> None:
        code = result.error_code or "error"
        if code in ("unknown_insurance", "insurance_not_accepted"):
            self.state.insurance_id = None
            self.say(
                "insurance_not_accepted",
                plans=", ".join(i.name for i in self.clinic.insurances),
            )
        elif code == "invalid_arguments":
            self.state.wish = {}
            self.say("conflicting_wishes")
        elif code == "too_late_to_cancel":
            self.say("too_late_to_cancel", phone=self.clinic.phone)
        elif code == "unknown_doctor":
            self.state.doctor_id = None
            self.say("unknown_doctor", doctors=", ".join(d.name for d in self.clinic.doctors))
        elif code in ("not_found", "not_active", "in_past"):
            self.say("appointment_unavailable")
        else:
            self.say("tool_error", phone=self.clinic.phone)

    async def patient_or_none(self) -> Patient | None:
        if self.ctx.caller_phone is None:
            return None
        try:
            return await self.ctx.patient()
        except Exception:  # an invalid number: treated as unknown
            return None

    def copay(self, price: str) -> str:
        """A co-payment of zero is "coberto pelo convênio", not "R$ 0,00"."""
        return self.text_of("covered") if not any(ch in "123456789" for ch in price) else price

    def hours(self) -> str:
        hours = self.clinic.hours
        return hours.get(self.lang) or next(iter(hours.values()), "")

    def doctor_list(self) -> str:
        return ", ".join(d.name for d in self.clinic.doctors)

    def service_list(self) -> str:
        return ", ".join(s.name(self.lang) for s in self.clinic.services)

    def service_name(self, service_id: str | None) -> str:
        service = self.clinic.service(service_id) if service_id else None
        return service.name(self.lang) if service else ""

    def service_id_of(self, appointment: dict[str, Any]) -> str | None:
        for service in self.clinic.services:
            if appointment.get("service") in service.names.values():
                return service.id
        return None
