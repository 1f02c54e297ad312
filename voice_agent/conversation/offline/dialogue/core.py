"""The core of the offline dialogue: ``Dialogue`` (the engine's entry) and ``Run``, one turn.

A turn reads the message (``nlu.parse``), lets the current stage take it (``stages.py``), else
what it asks for (``intents.py``), and answers from reply templates filled with tool outputs.
The flows live in collaborators the run holds: ``booking`` (search, offer, read back, book),
``appointments`` (list, cancel, move, confirm) and ``answers`` (prices, insurances, doctors,
hospitals).
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
from voice_agent.conversation.offline.dialogue.intents import Intents
from voice_agent.conversation.offline.dialogue.stages import Stages
from voice_agent.conversation.offline.dialogue.turn import Turn, observe_tool
from voice_agent.conversation.offline.lexicon import LEXICONS
from voice_agent.conversation.offline.names import address
from voice_agent.conversation.offline.names import warm_up as warm_up_names
from voice_agent.conversation.offline.nlu import name_correction, parse, warm_up
from voice_agent.conversation.offline.replies import Replies
from voice_agent.conversation.state import ConversationState
from voice_agent.safety.texts import EmergencyTexts
from voice_agent.store.tables import Patient
from voice_agent.tools.context import ToolContext
from voice_agent.tools.registry import ToolRegistry, ToolResult

logger = logging.getLogger(__name__)

MAX_TEXT = 2000
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
        self.intents = Intents(self)
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
            await self.intents.handoff(question=unanswered)
            return
        if state.phone is None and u.phone and state.stage != "ask_phone":
            self.stages.take_phone(u.phone)  # "Maria Silva, 11 98765-4321, quero…": up front
        if state.turns == 0 and not u.has("greeting", "handoff"):
            await self.intents.greet_new_contact()
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
        if u.has("urgent"):  # "preciso de um cardiologista com urgência": the number first
            self.say("urgent_note", call=self.emergency_call())
        if u.night is not None:
            self.say("closed_at_night", hour=u.night.strftime("%H:%M"), hours=self.hours())
        if await self.stages.by_stage(stripped, u):
            state.misunderstood = 0
            return
        if await self.intents.by_intent(u):
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

    # Back to the patient's goal -------------------------------------------------------------------

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

    def emergency_call(self) -> str:
        """Whom to call in an emergency, as the clinic set it ("o SAMU (192)")."""
        texts = EmergencyTexts(self.ctx.services.settings.prompts_dir)
        return texts.numbers(self.clinic, self.lang)["call"]

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
