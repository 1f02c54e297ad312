"""The offline receptionist's dialogue: a state machine over ``ConversationState``.

Each turn reads the message (``nlu.parse``), acts only through the tool registry, and answers
from reply templates filled with tool outputs. Booking, moving and cancelling happen only on an
explicit yes to a read-back in the previous turn: that is the one place ``confirmed_by_patient``
becomes true.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from voice_agent.clinic.model import Clinic
from voice_agent.conversation.offline import identity_stage
from voice_agent.conversation.offline.feasibility import Obstacle, check
from voice_agent.conversation.offline.lexicon import LEXICONS
from voice_agent.conversation.offline.names import address, relative
from voice_agent.conversation.offline.names import warm_up as warm_up_names
from voice_agent.conversation.offline.nlu import (
    WEEKDAY_IDS,
    TimeWish,
    Understanding,
    extract_name,
    name_correction,
    parse,
    unknown_doctor,
    warm_up,
)
from voice_agent.conversation.offline.replies import Replies
from voice_agent.conversation.state import ConversationState
from voice_agent.errors import InvalidPatientData
from voice_agent.i18n import WEEKDAYS, language_or_default, say_date, say_money, say_when
from voice_agent.patients.service import normalize_phone
from voice_agent.store.tables import InteractionKind
from voice_agent.tools.context import ToolContext
from voice_agent.tools.registry import ToolRegistry, ToolResult

logger = logging.getLogger(__name__)

MAX_TEXT = 2000
MAX_QUESTION = 300
TOPICS = {
    "ask_prices": "prices",
    "ask_insurances": "insurances",
    "ask_hospitals": "hospitals",
    "ask_doctors": "doctors",
    "ask_hours": "hours",
    "ask_address": "contact",
    "ask_services": "services",
}
CHOICE_STAGES = ("offering", "pick_appointment", "confirm")


@dataclass
class Turn:
    """What one turn produced; the engine turns it into the channel's reply."""

    parts: list[str] = field(default_factory=list)
    tool_calls: list[str] = field(default_factory=list)
    changed: dict[str, Any] | None = None
    end: bool = False
    handoff: bool = False

    @property
    def text(self) -> str:
        return "\n\n".join(p.strip() for p in self.parts if p.strip())


def observe_tool(state: ConversationState, name: str, result: ToolResult) -> None:
    """Remember what tools returned (offers, the appointment changed), whoever called them."""
    if not result.ok:
        return
    output = result.output
    if name == "find_slots":
        state.offers = list(output.get("options") or [])
        state.offered_service = output.get("service")
        state.chosen = None
        if state.offers:
            state.stage = "offering"
    for key in ("booked", "rescheduled", "cancelled", "confirmed"):
        if key in output and name != "find_slots":
            state.last_change = {"action": key, **output[key]}
            state.offers, state.chosen = [], None


class Dialogue:
    def __init__(self, registry: ToolRegistry, replies: Replies) -> None:
        self.registry = registry
        self.replies = replies

    def warm_up(self, clinic: Clinic) -> None:
        """Load every reply file and compile the NLU's patterns now, not on a patient's turn."""
        for language in LEXICONS:
            self.replies.templates(language)
        warm_up(clinic)
        warm_up_names()

    # Entry ---------------------------------------------------------------------------------------

    async def respond(self, state: ConversationState, text: str, ctx: ToolContext) -> Turn:
        turn = Turn()
        run = _Run(self, state, ctx, turn)
        await run.handle(text)
        return turn


class _Run:
    """One turn of the dialogue (kept apart so handlers share state, context and output)."""

    def __init__(
        self, dialogue: Dialogue, state: ConversationState, ctx: ToolContext, turn: Turn
    ) -> None:
        self.d = dialogue
        self.state = state
        self.ctx = ctx
        self.turn = turn
        self.clinic: Clinic = ctx.services.clinic()
        self.today: date = ctx.services.clock.now().astimezone(self.clinic.tz).date()
        self.past_asked: list[Obstacle] = []
        self.asked_doctor: str | None = None
        self.text = ""

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

    # The turn ------------------------------------------------------------------------------------

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
        if await self.by_stage(stripped, u):
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
        elif stage == identity_stage.STAGE:
            identity_stage.reprompt(self)
        elif always:
            self.say("how_can_help")

    # Stage handlers ------------------------------------------------------------------------------

    async def by_stage(self, text: str, u: Understanding) -> bool:
        stage = self.state.stage
        handler = {
            "ask_phone": self.on_phone,
            "ask_name": self.on_name,
            "ask_email": self.on_email,
            "ask_email_optional": self.on_email_optional,
            "ask_service": self.on_service,
            "offering": self.on_offering,
            "confirm": self.on_confirm,
            "confirm_cancel": self.on_confirm_cancel,
            "pick_appointment": self.on_pick_appointment,
            "ask_wish": self.on_wish,
            identity_stage.STAGE: self.on_identity,
        }.get(stage)
        if handler is None:
            return False
        return await handler(text, u)

    def switches_goal(self, u: Understanding) -> bool:
        """A new request or a question takes over from what the stage was waiting for."""
        return (
            u.has("cancel", "reschedule", "list", "confirm_attendance")
            or u.question is not None
            or u.unknown_question
        )

    async def on_phone(self, text: str, u: Understanding) -> bool:
        candidate = u.phone or (text if sum(c.isdigit() for c in text) >= 8 else None)
        if candidate is None:
            if self.switches_goal(u) and (u.question or u.unknown_question):
                return False
            self.say("ask_phone")
            return True
        try:
            phone = normalize_phone(candidate, self.clinic.country)
        except InvalidPatientData:
            self.say("bad_phone")
            return True
        self.state.phone = phone
        self.ctx.caller_phone = phone
        self.ctx.forget_patient()
        self.state.stage = "idle"
        await self.resume_goal()
        return True

    async def on_identity(self, text: str, u: Understanding) -> bool:
        return await identity_stage.answer(self, text, u)

    async def on_name(self, text: str, u: Understanding) -> bool:
        if self.switches_goal(u):
            return False
        spoken = u.intents - {"greeting", "thanks"}
        request = bool(u.service_id or not u.wish.empty or u.insurance_id)
        name = u.name or (None if spoken or request else extract_name(text, self.lang))
        if name is None or len(name) < 3:
            if request:  # "cardiologia amanhã de manhã": part of the request, not a name
                self.absorb(u)
                self.state.goal = self.state.goal or "book"
                self.say("ask_name_first")
                return True
            self.say("bad_name")
            return True
        arguments: dict[str, Any] = {"full_name": name}
        if u.email:
            arguments["email"] = u.email
        result = await self.call("register_patient", **arguments)
        if not result.ok:
            self.say("bad_name")
            return True
        first = address(name, self.lang)
        if u.email or self.state.goal:
            # E-mail is optional and asked once the slot is agreed, not before the offers.
            self.say("thanks_name_email", name=first)
            self.state.stage = "idle"
            await self.resume_goal()
            return True
        self.state.stage = "ask_email"
        self.say("ask_email", name=first)
        return True

    async def on_email(self, text: str, u: Understanding) -> bool:
        if u.email:
            result = await self.call("update_patient", email=u.email)
            if not result.ok:
                self.say("bad_email")
                return True
            self.say("email_saved")
        elif u.has("skip", "no"):
            self.say("email_skipped")
        elif "@" in text:
            self.say("bad_email")
            return True
        elif self.switches_goal(u) or u.has("book") or u.service_id:
            self.state.stage = "idle"
            return False
        else:
            self.say("bad_email")
            return True
        self.state.stage = "idle"
        await self.resume_goal()
        return True

    async def on_email_optional(self, text: str, u: Understanding) -> bool:
        """The e-mail asked after a booking: given, declined, or not answered at all."""
        self.state.stage = "idle"
        if u.email:
            result = await self.call("update_patient", email=u.email)
            self.say("email_saved" if result.ok else "bad_email")
            if not result.ok:
                self.state.stage = "ask_email_optional"
            return True
        if u.has("skip", "no") and not u.has("book"):
            self.say("email_skipped")
            return True
        return False

    async def on_service(self, text: str, u: Understanding) -> bool:
        if u.service_id or u.doctor_id:
            self.absorb(u)
            await self.search()
            return True
        if self.switches_goal(u):
            return False
        self.say("unknown_service", services=self.service_list())
        return True

    async def on_offering(self, text: str, u: Understanding) -> bool:
        state = self.state
        if self.switches_goal(u) and u.option is None:
            return False
        if await self.more(u):
            return True
        offer = self.pick_offer(u)
        if offer is not None:
            state.chosen = offer["option"]
            state.stage = "confirm"
            self.read_back(offer)
            return True
        if getattr(self, "ambiguous", False) and not u.has("reject", "no"):
            self.say("which_option", count=len(state.offers))
            return True
        if self.new_request(u):
            self.absorb(u)
            await self.search()
            return True
        if u.has("reject", "no"):
            state.stage = "ask_wish"
            self.say("ask_wish")
            return True
        if u.has("yes") and len(state.offers) == 1:
            state.chosen = state.offers[0]["option"]
            state.stage = "confirm"
            self.read_back(state.offers[0])
            return True
        if u.has("yes"):
            self.say("which_option", count=len(state.offers))
            return True
        if u.has("book") or u.question or u.has("thanks", "bye", "greeting"):
            return False
        if u.clock or u.weekday_mentions:
            # A time or day that is not among the offers: search for it.
            self.absorb(u)
            await self.search()
            return True
        return False

    async def on_confirm(self, text: str, u: Understanding) -> bool:
        state = self.state
        offer = self.offer_by_label(state.chosen)
        if offer is None:
            state.stage = "offering" if state.offers else "idle"
            return False
        other = self.pick_offer(u)
        if other is not None and other["option"] != offer["option"]:
            state.chosen = other["option"]
            self.read_back(other)
            return True
        if await self.more(u):
            return True
        if self.new_request(u):
            self.absorb(u)
            await self.search()
            return True
        if u.has("yes") or (state.goal == "reschedule" and u.has("reschedule")):
            await self.execute(offer)
            return True
        if u.has("no", "reject"):
            state.stage = "ask_wish"
            state.chosen = None
            self.say("not_confirmed")
            return True
        if self.switches_goal(u):
            return False
        self.say("yes_or_no")
        return True

    async def on_confirm_cancel(self, text: str, u: Understanding) -> bool:
        state = self.state
        target = state.target
        if target is None:
            state.stage = "idle"
            return False
        if u.has("yes", "cancel") and not u.has("no"):
            result = await self.call(
                "cancel_appointment",
                appointment_id=target["appointment_id"],
                confirmed_by_patient=True,
            )
            state.stage, state.goal, state.target = "idle", None, None
            if result.ok:
                done = result.output["cancelled"]
                self.turn.changed = {"action": "cancelled", **done}
                self.say("cancelled", **done)
            else:
                self.tool_problem(result)
            return True
        if u.has("no", "reject"):
            state.stage, state.goal, state.target = "idle", None, None
            self.say("kept")
            return True
        if self.switches_goal(u) or u.has("book"):
            state.stage = "idle"
            return False
        self.say("yes_or_no")
        return True

    async def on_pick_appointment(self, text: str, u: Understanding) -> bool:
        state = self.state
        chosen = self.pick_appointment(u)
        if chosen is None:
            if u.has("no", "reject"):
                state.stage, state.goal = "idle", None
                self.say("how_can_help")
                return True
            if self.switches_goal(u) and not u.has(state.goal or ""):
                return False
            self.say("which_appointment")
            return True
        state.candidates = []
        await self.act_on_appointment(chosen, u)
        return True

    async def on_wish(self, text: str, u: Understanding) -> bool:
        if self.switches_goal(u) and not u.has(self.state.goal or "-"):
            return False
        if await self.more(u):
            return True
        if not u.wish.empty or u.doctor_id or u.service_id:
            self.absorb(u)
            await self.search()
            return True
        if u.has("yes", "reject", "any"):
            # "any time" drops the wishes (not the weekdays they cannot come); either way the
            # patient has seen the last offers, so look past them.
            if u.has("any"):
                excluded = list(self.state.wish.get("exclude_weekdays", []))
                self.state.wish = TimeWish(exclude_weekdays=excluded).to_args()
            await self.search_after_offers()
            return True
        if u.has("no"):
            self.state.stage, self.state.goal = "idle", None
            self.say("how_can_help")
            return True
        return False

    # Intents when no stage took the message ------------------------------------------------------

    async def by_intent(self, u: Understanding) -> bool:
        state = self.state
        if u.unknown_question:
            await self.unknown_question()
            return True
        handled = False
        if u.question:
            await self.answer(u)
            handled = True
        elif u.doctor_id is None and (wrong := unknown_doctor(self.text, self.clinic)):
            self.say("unknown_doctor_named", doctor=wrong, doctors=self.doctor_list())
            state.doctor_id = None
            return True
        if u.has("cancel"):
            await self.start_change("cancel", u)
            return True
        if u.has("reschedule"):
            await self.start_change("reschedule", u)
            return True
        if u.has("confirm_attendance"):
            await self.start_change("confirm", u)
            return True
        if u.has("list"):
            await self.list_appointments()
            return True
        wants_booking = u.has("book") or (
            not handled and (u.service_id is not None or u.doctor_id is not None)
        )
        if wants_booking or (not handled and not u.wish.empty):
            state.goal = "book"
            self.absorb(u)
            await self.continue_booking()
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
        named = patient is not None and patient.full_name
        if named and await self.ctx.verified_by() != "unverified":
            name = address(patient.full_name, self.lang)
            self.say("greeting_known", name=name, clinic=self.clinic.name)
        elif patient is not None and not named and self.state.stage in ("idle", "start"):
            # First contact: collect the name (and e-mail) before anything else.
            self.say("greeting_new", clinic=self.clinic.name)
            self.state.stage = "ask_name"
            if u is not None and u.name:  # "Oi, meu nome é Rafael Souza": the name is given
                await self.on_name(self.text, u)
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

    # Booking -------------------------------------------------------------------------------------

    def absorb(self, u: Understanding) -> None:
        state = self.state
        self.given_name, self.given_email = u.name, u.email
        if u.service_id and u.service_id != state.service_id:
            state.service_id = u.service_id
            if u.doctor_id is None and state.doctor_id:
                doctor = self.clinic.doctor(state.doctor_id)
                if doctor is None or u.service_id not in doctor.services:
                    state.doctor_id = None
        if u.doctor_id:
            state.doctor_id = u.doctor_id
        if u.insurance_id:
            state.insurance_id = u.insurance_id
        elif u.private:
            state.insurance_id = None
        if for_whom := relative(self.text, self.lang):
            state.for_whom = for_whom
        self.past_asked = [
            Obstacle("date_in_past", {"date": say_date(d, self.lang)}) for d in u.wish.past
        ]
        if not u.wish.empty:
            old = TimeWish.from_args(state.wish)
            state.wish = u.wish.merged_over(old).to_args()
            self.today_asked = u.wish.today_asked
        else:
            self.today_asked = False

    def new_request(self, u: Understanding) -> bool:
        state = self.state
        return (
            not u.wish.empty
            or (u.service_id is not None and u.service_id != state.service_id)
            or (u.doctor_id is not None and u.doctor_id != state.doctor_id)
            or (u.insurance_id is not None and u.insurance_id != state.insurance_id)
        )

    async def continue_booking(self) -> None:
        state = self.state
        if state.phone is None:
            state.stage = "ask_phone"
            self.say("ask_phone")
            return
        patient = await self.patient_or_none()
        if patient is not None and not patient.full_name:
            given = getattr(self, "given_name", None)
            if given:
                arguments: dict[str, Any] = {"full_name": given}
                if getattr(self, "given_email", None):
                    arguments["email"] = self.given_email
                result = await self.call("register_patient", **arguments)
                if result.ok:
                    self.say("thanks_name_email", name=address(given, self.lang))
                    await self.continue_booking_registered()
                    return
            state.stage = "ask_name"
            self.say("ask_name_first")
            return
        await self.continue_booking_registered()

    async def continue_booking_registered(self) -> None:
        state = self.state
        if state.service_id is None and state.doctor_id:
            doctor = self.clinic.doctor(state.doctor_id)
            if doctor is not None:
                state.service_id = doctor.services[0]
        if state.service_id is None:
            state.stage = "ask_service"
            self.say("ask_service", services=self.service_list())
            return
        await self.search()

    async def resume_goal(self) -> None:
        goal = self.state.goal
        if goal == "book":
            await self.continue_booking()
        elif goal in ("cancel", "reschedule", "confirm"):
            await self.start_change(goal, None)
        elif goal == "list":
            await self.list_appointments()
        else:
            self.say("how_can_help")

    async def more(self, u: Understanding) -> bool:
        """ "Other times" / "другие" / "outros": the next times after the last one offered,
        under the wishes so far and any named now ("others, but in the afternoon")."""
        if not u.has("more") or u.option is not None or u.clock is not None:
            return False
        if u.service_id and u.service_id != self.state.service_id:
            return False  # another service altogether: a new search, not "more of the same"
        self.absorb(u)
        self.state.chosen = None
        await self.search_after_offers()
        return True

    async def search_after_offers(self) -> None:
        """Search past the latest offer: the rest of its day, then the days after it."""
        state = self.state
        last = max(((o["date"], o["time"]) for o in state.offers), default=None)
        if last is None:
            await self.search()
            return
        rest, later = TimeWish.from_args(state.wish).after(
            date.fromisoformat(last[0]), time.fromisoformat(last[1])
        )
        await self.search([w.to_args() for w in (rest, later) if w is not None], after=True)

    async def search(self, wishes: list[dict[str, Any]] | None = None, after: bool = False) -> None:
        """Find and offer slots for the wishes (``state.wish`` unless ``wishes`` are given: then
        each is tried in turn until one has free times)."""
        state = self.state
        if state.goal is None:
            state.goal = "book"
        if state.goal == "book" and (state.phone is None or state.service_id is None):
            await self.continue_booking()
            return
        service = state.service_id
        if state.goal == "reschedule" and state.target:
            service = state.target.get("service_id") or service
        if service is None:
            state.stage = "ask_service"
            self.say("ask_service", services=self.service_list())
            return
        if wishes is None:
            feasible = check(
                self.clinic,
                TimeWish.from_args(state.wish),
                service,
                state.doctor_id,
                state.insurance_id,
                self.lang,
            )
            for obstacle in feasible.obstacles + self.past_asked:
                self.say(obstacle.key, **obstacle.fields)
            state.wish = feasible.wish.to_args()
            state.insurance_id = feasible.insurance_id
        common: dict[str, Any] = {"service": service}
        if state.doctor_id:
            common["doctor"] = state.doctor_id
        if state.insurance_id:
            common["insurance"] = state.insurance_id
        prefix = ""
        result: ToolResult | None = None
        for wish in [state.wish] if wishes is None else wishes:
            arguments = {**common, **wish}
            if getattr(self, "today_asked", False) or (
                wish.get("dates") and min(wish["dates"]) <= self.today.isoformat()
            ):
                prefix = self.text_of("same_day")
                dates = [d for d in wish.get("dates", []) if d > self.today.isoformat()]
                arguments.pop("dates", None)
                if dates:
                    arguments["dates"] = dates
            result = await self.call("find_slots", **arguments)
            if not result.ok or result.output.get("options"):
                break
        if result is None:  # the wishes leave no day after the last offer
            state.stage = "ask_wish"
            self.say("no_more_slots", service=self.service_name(service))
            return
        if not result.ok:
            state.stage = "ask_wish"
            if prefix:
                self.turn.parts.append(prefix)
            self.tool_problem(result)
            return
        options = result.output.get("options") or []
        service_name = result.output.get("service") or self.service_name(service)
        if not options:
            state.stage = "ask_wish"
            key = "no_slots_insurance" if state.insurance_id else "no_slots"
            key = "no_more_slots" if after else key
            plan = self.clinic.insurance(state.insurance_id) if state.insurance_id else None
            self.say(key, service=service_name, plan=plan.name if plan else "", prefix=prefix)
            return
        if state.goal == "book":
            options = await self.without_overlaps(options, service)
            if not options:
                state.stage = "ask_wish"
                self.say("ask_wish")
                return
        options = self.in_date_order(options)
        lines = "\n".join(self.offer_line(o) for o in options)
        key = "offers_reschedule" if state.goal == "reschedule" else "offers"
        self.say(key, service=service_name, options=lines, prefix=prefix, count=len(options))

    async def without_overlaps(
        self, options: list[dict[str, Any]], service_id: str
    ) -> list[dict[str, Any]]:
        """Offers that clash with one of the patient's own appointments (any doctor) are left
        out, and the patient is told why: never two overlapping bookings without a word."""
        patient = await self.patient_or_none()
        if patient is None:
            return options
        booked = await self.ctx.services.booking.list_for_patient(patient.id)
        if not booked:
            return options
        service = self.clinic.service(service_id)
        length = timedelta(minutes=service.duration_minutes if service else 30)
        tz = self.clinic.tz
        kept, clashes = [], []
        for offer in options:
            start = datetime.combine(
                date.fromisoformat(offer["date"]), time.fromisoformat(offer["time"]), tz
            )
            clash = next((a for a in booked if a.start < start + length and start < a.end), None)
            if clash is None:
                kept.append(offer)
            elif clash not in clashes:
                clashes.append(clash)
        for clash in clashes:
            local = clash.start.astimezone(tz)
            self.say("overlap", when=say_when(local, self.lang))
        self.state.offers = [o for o in self.state.offers if o in kept]
        return kept

    def in_date_order(self, options: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The ranked choice of offers, numbered for the patient in date order.

        The ranking decides *which* times are offered; a list read as "1) Wed 08:00, 2) Fri 13:00,
        3) Wed 13:30" is hard to follow, so the patient sees them chronologically and "option 1"
        means the first one they saw. Each offer keeps the tool's own label as ``hold`` for booking.
        """
        ordered = sorted(options, key=lambda o: (o["date"], o["time"]))
        shown = [
            {**o, "option": str(n), "hold": o.get("hold", o["option"])}
            for n, o in enumerate(ordered, start=1)
        ]
        self.state.offers = shown
        return shown

    def offer_line(self, offer: dict[str, Any]) -> str:
        price = offer.get("patient_pays")
        return self.text_of(
            "offer_line",
            option=offer["option"],
            when=offer["when"],
            doctor=offer["doctor"],
            price=self.text_of("offer_price", price=self.copay(price)) if price else "",
        )

    def read_back(self, offer: dict[str, Any]) -> None:
        state = self.state
        price = offer.get("patient_pays")
        fields = {
            "service": state.offered_service or self.service_name(state.service_id),
            "when": offer["when"],
            "doctor": offer["doctor"],
            "where": offer.get("where", ""),
            "price": self.text_of("offer_price", price=self.copay(price)) if price else "",
        }
        if state.goal == "reschedule" and state.target:
            self.say("confirm_reschedule", old=state.target["when"], **fields)
        else:
            self.say("confirm_book", **fields)

    async def execute(self, offer: dict[str, Any]) -> None:
        """The patient said yes to the read-back in the previous turn: act now."""
        state = self.state
        if state.goal == "reschedule" and state.target:
            result = await self.call(
                "reschedule_appointment",
                appointment_id=state.target["appointment_id"],
                option=offer.get("hold", offer["option"]),
                confirmed_by_patient=True,
            )
            key, done_key = "rescheduled", "rescheduled"
        else:
            arguments: dict[str, Any] = {
                "option": offer.get("hold", offer["option"]),
                "confirmed_by_patient": True,
            }
            if state.insurance_id:
                arguments["insurance"] = state.insurance_id
            if state.for_whom:
                arguments["for_whom"] = state.for_whom
            result = await self.call("book_appointment", **arguments)
            key, done_key = "booked", "booked"
        if not result.ok:
            if result.error_code in ("offer_expired", "unknown_option", "slot_taken"):
                self.say("slot_gone")
                await self.search()
                return
            if result.error_code == "needs_registration":
                state.stage = "ask_name"
                self.say("ask_name_first")
                return
            state.stage = "idle"
            self.tool_problem(result)
            return
        done = result.output[done_key]
        self.turn.changed = {"action": done_key, **done}
        state.stage, state.goal, state.target, state.chosen = "idle", None, None, None
        state.wish, state.doctor_id = {}, None
        self.say(key, **done)
        if done_key == "booked" and state.for_whom:
            self.say("booked_for", name=state.for_whom)
            state.for_whom = None
        if done_key == "booked":
            patient = await self.patient_or_none()
            if patient is not None and not patient.email:
                state.stage = "ask_email_optional"
                self.say("ask_email_optional")

    # Existing appointments -----------------------------------------------------------------------

    async def start_change(self, goal: str, u: Understanding | None) -> None:
        state = self.state
        state.goal = goal
        state.target = None
        if state.phone is None:
            state.stage = "ask_phone"
            self.say("ask_phone")
            return
        result = await self.call("list_my_appointments")
        if identity_stage.refused(result):
            await identity_stage.ask(self, goal)
            return
        if not result.ok:
            self.tool_problem(result)
            return
        appointments = result.output.get("appointments") or []
        for appointment in appointments:
            appointment["service_id"] = self.service_id_of(appointment)
        if not appointments:
            state.stage, state.goal = "idle", None
            self.say("no_appointments")
            return
        state.candidates = appointments
        if len(appointments) == 1 and not (
            u is not None and u.service_id and appointments[0]["service_id"] != u.service_id
        ):
            state.candidates = []
            await self.act_on_appointment(appointments[0], u)
            return
        chosen = self.pick_appointment(u) if u else None
        if chosen is not None:
            state.candidates = []
            await self.act_on_appointment(chosen, u)
            return
        state.stage = "pick_appointment"
        self.say("pick_appointment", appointments=self.appointment_lines(appointments))

    async def act_on_appointment(
        self, appointment: dict[str, Any], u: Understanding | None
    ) -> None:
        state = self.state
        state.target = appointment
        if state.goal == "cancel":
            state.stage = "confirm_cancel"
            self.say("confirm_cancel", **appointment)
        elif state.goal == "confirm":
            result = await self.call(
                "confirm_appointment",
                appointment_id=appointment["appointment_id"],
                confirmed_by_patient=True,
            )
            state.stage, state.goal = "idle", None
            if result.ok:
                done = result.output["confirmed"]
                self.turn.changed = {"action": "confirmed", **done}
                self.say("confirmed_attendance", **done)
            else:
                self.tool_problem(result)
        else:
            state.service_id = appointment.get("service_id")
            if u is not None and (not u.wish.empty or u.doctor_id):
                self.absorb(u)
                await self.search()
            else:
                state.wish = {}
                state.stage = "ask_wish"
                self.say("ask_wish_reschedule", **appointment)

    async def list_appointments(self) -> None:
        if self.state.phone is None:
            self.state.goal = None
            self.state.stage = "ask_phone"
            self.say("ask_phone")
            return
        result = await self.call("list_my_appointments")
        if identity_stage.refused(result):
            await identity_stage.ask(self, "list")
            return
        self.state.goal = None
        if not result.ok:
            self.tool_problem(result)
            return
        appointments = result.output.get("appointments") or []
        if not appointments:
            self.say("no_appointments")
        else:
            self.say("list", appointments=self.appointment_lines(appointments))

    def appointment_lines(self, appointments: list[dict[str, Any]]) -> str:
        return "\n".join(
            self.text_of("appointment_line", n=i, **a) for i, a in enumerate(appointments, 1)
        )

    def pick_appointment(self, u: Understanding | None) -> dict[str, Any] | None:
        candidates = self.state.candidates
        if u is None or not candidates:
            return None
        if u.option is not None:
            index = u.option - 1 if u.option > 0 else len(candidates) - 1
            if 0 <= index < len(candidates):
                return candidates[index]
        matches = candidates
        if u.service_id:
            matches = [a for a in matches if a.get("service_id") == u.service_id]
        if u.doctor_id:
            doctor = self.clinic.doctor(u.doctor_id)
            matches = [a for a in matches if doctor and a["doctor"] == doctor.name]
        if u.wish.dates:
            wanted = {d.isoformat() for d in u.wish.dates}
            matches = [a for a in matches if a["date"] in wanted]
        if u.weekday_mentions:
            matches = [a for a in matches if _weekday(a["date"]) in u.weekday_mentions] or matches
        if u.clock:
            matches = [a for a in matches if a["time"] == u.clock.strftime("%H:%M")]
        narrowed = matches is not candidates
        return matches[0] if narrowed and len(matches) == 1 else None

    # Offers --------------------------------------------------------------------------------------

    def offer_by_label(self, label: str | None) -> dict[str, Any] | None:
        return next((o for o in self.state.offers if o["option"] == label), None)

    def pick_offer(self, u: Understanding) -> dict[str, Any] | None:
        offers = self.state.offers
        if not offers:
            return None
        if u.option is not None:
            index = u.option - 1 if u.option > 0 else len(offers) - 1
            return offers[index] if 0 <= index < len(offers) else None
        matches = offers
        if u.clock:
            matches = [o for o in matches if o["time"] == u.clock.strftime("%H:%M")]
            if not matches:
                return None
        elif u.wish.has_time():
            matches = [o for o in matches if self.fits_time(o, u)]
            if not matches:
                return None
        if u.weekday_mentions and not u.wish.exclude_weekdays:
            by_day = [o for o in matches if _weekday(o["date"]) in u.weekday_mentions]
            if not by_day:
                return None
            matches = by_day
        if u.wish.dates:
            wanted = {d.isoformat() for d in u.wish.dates}
            by_date = [o for o in matches if o["date"] in wanted]
            if not by_date:
                return None
            matches = by_date
        if u.doctor_id:
            doctor = self.clinic.doctor(u.doctor_id)
            by_doctor = [o for o in matches if doctor and o["doctor"] == doctor.name]
            if not by_doctor:
                return None
            matches = by_doctor
        self.ambiguous = matches is not offers and len(matches) > 1
        if matches is not offers and len(matches) == 1:
            return matches[0]
        return None

    def fits_time(self, offer: dict[str, Any], u: Understanding) -> bool:
        at = offer["time"]
        if u.wish.earliest and at < u.wish.earliest.strftime("%H:%M"):
            return False
        if u.wish.latest and at >= u.wish.latest.strftime("%H:%M"):
            return False
        if u.wish.periods:
            periods = self.clinic.periods_by_id
            return any(
                (p := periods.get(pid)) is not None
                and p.start.strftime("%H:%M") <= at < p.end.strftime("%H:%M")
                for pid in u.wish.periods
            )
        return True

    # Information ---------------------------------------------------------------------------------

    async def answer(self, u: Understanding) -> None:
        intent = u.question or "ask_services"
        topic = TOPICS[intent]
        if u.doctor_id and u.insurance_id and topic in ("insurances", "prices", "services"):
            self.turn.parts.append(self.plan_with_doctor(u.insurance_id, u.doctor_id))
            return
        if u.insurance_id and u.service_id and topic in ("insurances", "prices", "services"):
            covered = check(self.clinic, TimeWish(), u.service_id, None, u.insurance_id, self.lang)
            if covered.obstacles:  # "а по ОМС к неврологу можно?": no, and what it covers
                obstacle = covered.obstacles[0]
                self.say(obstacle.key, **obstacle.fields)
                self.turn.parts.append(
                    self.format_info("insurances", self.plan_info(u.insurance_id))
                )
                return
        about = None
        if topic == "insurances" and u.insurance_id:
            about = u.insurance_id
        elif topic in ("prices", "services", "insurances") and u.service_id:
            about = u.service_id
        elif topic == "doctors":
            about = u.doctor_id or u.service_id
        arguments: dict[str, Any] = {"topic": topic}
        if about:
            arguments["about"] = about
        result = await self.call("clinic_info", **arguments)
        if not result.ok:
            self.tool_problem(result)
            return
        self.asked_doctor = u.doctor_id
        self.turn.parts.append(self.format_info(topic, result.output))

    def doctor_prices(self, service: dict[str, Any]) -> str:
        """ " (Dra. Ana Souza: R$ 550,00)": doctors whose own price differs from the service's."""
        own = service.get("doctor_prices") or {}
        if not own:
            return ""
        listed = ", ".join(self.text_of("plan_price", plan=d, price=p) for d, p in own.items())
        return f" ({listed})"

    def plan_info(self, insurance_id: str) -> dict[str, Any]:
        """What a plan covers, in the shape ``clinic_info`` answers it (read from the file)."""
        clinic = self.clinic
        plan = clinic.insurance(insurance_id)
        assert plan is not None
        covers = [
            {
                "service": s.name(self.lang),
                "patient_pays": say_money(s.insurance_prices[plan.id], clinic.country),
            }
            for s in clinic.services
            if plan.id in s.insurance_prices
            and any(clinic.accepts(plan.id, d.id, s.id) for d in clinic.doctors_for(s.id))
        ]
        return {"insurances": [{"name": plan.name, "covers": covers}]}

    def plan_with_doctor(self, insurance_id: str, doctor_id: str) -> str:
        """ "Aceitam Amil com a Dra. Ana?": what that plan covers with that doctor, from the
        clinic file (the plan's services and doctors, the service's co-payments)."""
        clinic = self.clinic
        doctor, plan = clinic.doctor(doctor_id), clinic.insurance(insurance_id)
        assert doctor is not None and plan is not None
        covers = []
        for service_id in doctor.services:
            service = clinic.service(service_id)
            if service is None or plan.id not in service.insurance_prices:
                continue
            if clinic.accepts(plan.id, doctor.id, service_id):
                price = self.copay(say_money(service.insurance_prices[plan.id], clinic.country))
                covers.append(
                    self.text_of("plan_covers_line", service=service.name(self.lang), price=price)
                )
        if covers:
            return self.text_of(
                "plan_with_doctor", plan=plan.name, doctor=doctor.name, covers=", ".join(covers)
            )
        services = ", ".join(
            f"{clinic.services_by_id[i].name(self.lang)} "
            f"({say_money(clinic.price(i, None, doctor.id), clinic.country)})"
            for i in doctor.services
        )
        return self.text_of(
            "plan_not_with_doctor", plan=plan.name, doctor=doctor.name, services=services
        )

    def format_info(self, topic: str, output: dict[str, Any]) -> str:
        if "services" in output and topic == "services" and len(output["services"]) == 1:
            # "do you see children?": that service, who does it and what it costs.
            s = output["services"][0]
            plans = ", ".join(
                self.text_of("plan_price", plan=p, price=self.copay(v))
                for p, v in s["with_insurance"].items()
            )
            return self.text_of(
                "info_service",
                service=s["service"],
                doctors=", ".join(s["doctors"]),
                price=s["private_price"] + self.doctor_prices(s),
                plans=self.text_of("plans_part", plans=plans) if plans else "",
            )
        if "services" in output and topic in ("prices", "services", "insurances"):
            lines = []
            for s in output["services"]:
                plans = ", ".join(
                    self.text_of("plan_price", plan=p, price=self.copay(v))
                    for p, v in s["with_insurance"].items()
                )
                plans = self.text_of("plans_part", plans=plans) if plans else ""
                lines.append(
                    self.text_of(
                        "info_price_line",
                        service=s["service"],
                        price=s["private_price"] + self.doctor_prices(s),
                        plans=plans,
                        doctors=", ".join(s["doctors"]),
                    )
                )
            key = "info_prices" if topic != "services" else "info_services"
            return self.text_of(key, lines="\n".join(lines))
        if "insurances" in output:
            if len(output["insurances"]) == 1:
                plan = output["insurances"][0]
                covers = ", ".join(
                    self.text_of(
                        "plan_covers_line",
                        service=c["service"],
                        price=self.copay(c["patient_pays"]),
                    )
                    for c in plan["covers"]
                )
                return self.text_of("info_insurance", plan=plan["name"], covers=covers)
            names = ", ".join(p["name"] for p in output["insurances"])
            return self.text_of("info_insurances", plans=names)
        if "not_accepted" in output:
            return self.text_of("info_insurances", plans=", ".join(output["accepted"]))
        if "doctors" in output:
            lines = "\n".join(
                self.text_of(
                    "info_doctor_line",
                    name=d["name"],
                    title=d["title"],
                    services=", ".join(d["services"]),
                    hospitals=", ".join(d["hospitals"]),
                    days=", ".join(
                        WEEKDAYS[language_or_default(self.lang)][WEEKDAY_IDS.index(day)]
                        for day in d.get("works_on", [])
                    ),
                )
                for d in output["doctors"]
            )
            return self.text_of("info_doctors", lines=lines)
        if "hospitals" in output:
            doctor = self.clinic.doctor(self.asked_doctor) if self.asked_doctor else None
            if doctor is not None:  # "where does Dr. Tanaka work?": his hospitals only
                output["hospitals"] = [
                    h for h in output["hospitals"] if doctor.name in h["doctors"]
                ]
            lines = "\n".join(
                self.text_of(
                    "info_hospital_line",
                    name=h["name"],
                    address=h["address"],
                    doctors=", ".join(h["doctors"]),
                )
                for h in output["hospitals"]
            )
            return self.text_of("info_hospitals", lines=lines)
        if "hours" in output:
            if not output["hours"]:  # the clinic file does not say: no guessing
                return self.text_of("unknown_question_busy", phone=self.clinic.phone)
            return self.text_of("info_hours", hours=output["hours"])
        if "not_found" in output:
            return self.text_of("unknown_service", services=", ".join(output["services"]))
        return self.text_of(
            "info_contact",
            name=output.get("name", ""),
            address=output.get("address", ""),
            phone=output.get("phone", ""),
            email=output.get("email") or "",
        )

    # Helpers -------------------------------------------------------------------------------------

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

    async def patient_or_none(self) -> Any:
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


def _weekday(iso_day: str) -> str:
    return ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[date.fromisoformat(iso_day).weekday()]
