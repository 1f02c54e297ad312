"""What the dialogue does with a message no stage took: the patient's request (book, move,
cancel, confirm, list, a question), a greeting, thanks or goodbye, a hand-over to the staff, or
an honest "I don't know"."""

from __future__ import annotations

from voice_agent.conversation.offline.dialogue.part import Part
from voice_agent.conversation.offline.names import address
from voice_agent.conversation.offline.nlu import Understanding, unknown_doctor
from voice_agent.store.tables import InteractionKind

MAX_QUESTION = 300
"""How much of a question the staff alert and the state keep."""


class Intents(Part):
    """Requests, greetings and hand-overs when no stage was waiting for this message."""

    async def by_intent(self, u: Understanding) -> bool:
        state = self.state
        if u.other_specialty and u.service_id is None and u.doctor_id is None:
            await self.other_specialty(u)
            return True
        if u.other_insurer and u.insurance_id is None and self.other_insurer(u):
            return True
        if u.unknown_question:
            await self.unknown_question()
            return True
        handled = False
        if u.question:
            await self.run.answers.answer(u)
            handled = True
        elif u.doctor_id is None and (wrong := unknown_doctor(self.text, self.clinic)):
            self.say("unknown_doctor_named", doctor=wrong, doctors=self.run.doctor_list())
            state.doctor_id = None
            return True
        if u.has("cancel"):
            await self.run.appointments.start_change("cancel", u)
            return True
        if u.has("reschedule"):
            await self.run.appointments.start_change("reschedule", u)
            return True
        if u.has("confirm_attendance"):
            await self.run.appointments.start_change("confirm", u)
            return True
        if u.has("list"):
            await self.run.appointments.list_appointments()
            return True
        wants_booking = u.has("book") or (
            not handled and (u.service_id is not None or u.doctor_id is not None)
        )
        if wants_booking or (not handled and not u.wish.empty):
            state.goal = "book"
            self.run.booking.absorb(u)
            await self.run.booking.continue_booking()
            return True
        if handled:
            self.after_answer()
            return True
        if u.has("thanks", "bye"):
            # "Por nada!" answers a thanks; a bare "tchau" gets a goodbye, not "you're welcome".
            self.say("goodbye" if u.has("thanks") else "farewell")
            self.turn.end = u.has("bye") or state.stage in ("idle", "start")
            return True
        if u.has("greeting"):
            await self.greet(u)
            return True
        if u.has("yes", "no", "urgent"):  # "é urgente": the emergency number was said first
            self.say("how_can_help")
            return True
        return False

    def other_insurer(self, u: Understanding) -> bool:
        """A plan the clinic does not take: said plainly, with the plans it does take (it said
        "I don't have that information" and offered the staff). A booking request goes on as
        a private one (returns False: not done yet)."""
        plans = ", ".join(plan.name for plan in self.clinic.insurances)
        self.say("other_insurer", plan=u.other_insurer, plans=plans)
        self.state.insurance_id = None
        if u.has("book") or u.service_id or u.doctor_id or not u.wish.empty:
            return False
        self.after_answer(settle=True)
        return True

    async def other_specialty(self, u: Understanding) -> None:
        """A specialty the clinic does not offer, asked about or asked for: said plainly, with
        what the clinic does offer; a booking request goes on to "which service?"."""
        state = self.state
        self.say("other_specialty", specialty=u.other_specialty)
        if u.has("book") or (not u.question and not u.asks):
            state.goal = "book"
            state.service_id = state.doctor_id = None
            self.run.booking.absorb(u)
            await self.run.booking.continue_booking()
            return
        if state.stage != "ask_service":  # that stage's question lists them already
            self.say("our_services", services=self.run.service_list())
        self.after_answer(settle=True)

    def after_answer(self, *, settle: bool = False) -> None:
        """After an answer: what the stage waits for, asked again, or "anything else?" when
        nothing is pending (``settle``: a conversation that had not started is idle now)."""
        self.run.reprompt()
        if self.state.stage in ("idle", "start"):
            if settle:
                self.state.stage = "idle"
            self.say("anything_else")

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
                await self.run.stages.on_name(self.text, u)
                return
            self.say("ask_name")
            return
        else:
            self.say("greeting_new", clinic=self.clinic.name)
        if self.state.stage not in ("idle", "start"):
            self.run.reprompt()
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
            self.run.reprompt()
