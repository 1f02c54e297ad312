"""The dialogue's stages: what a message means while the receptionist waits for something
(a phone number, a name, an e-mail, a service, a choice among offers, a yes to a read-back)."""

from __future__ import annotations

from typing import Any

from voice_agent.conversation.offline.dialogue import identity
from voice_agent.conversation.offline.dialogue.part import Part
from voice_agent.conversation.offline.names import address
from voice_agent.conversation.offline.nlu import TimeWish, Understanding, extract_name
from voice_agent.conversation.offline.nlu.person_names import bare_name
from voice_agent.errors import InvalidPatientData
from voice_agent.patients.service import normalize_phone


class Stages(Part):
    """One handler per ``state.stage``; a handler returns False to let the intents take over."""

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
            identity.STAGE: self.on_identity,
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
            or u.other_specialty is not None
            or u.other_insurer is not None
        )

    async def on_phone(self, text: str, u: Understanding) -> bool:
        candidate = u.phone or (text if sum(c.isdigit() for c in text) >= 8 else None)
        name = self.volunteered_name(text, u)
        if name is not None:
            self.state.given_name = name
        if candidate is None:
            if self.switches_goal(u) and (u.question or u.unknown_question):
                return False
            if name is not None:
                self.say("ask_phone_after_name", name=address(name, self.lang))
            else:
                self.say("ask_phone")
            return True
        if not self.take_phone(candidate):
            self.say("bad_phone")
            return True
        self.state.stage = "idle"
        await self.run.resume_goal()
        return True

    def take_phone(self, candidate: str) -> bool:
        """The caller's number as they typed it (never carrier-verified); False if it is none."""
        try:
            phone = normalize_phone(candidate, self.clinic.country)
        except InvalidPatientData:
            return False
        self.state.phone = phone
        self.ctx.caller_phone = phone
        self.ctx.forget_patient()
        return True

    def volunteered_name(self, text: str, u: Understanding) -> str | None:
        """A name said while the number is asked for ("meu nome é João Pereira", "Maria Silva,
        11 98765-4000"): kept for the registration that follows. A bare name counts only when
        the message says nothing else and is written as a name is (capitalised), so that
        "meu telefone é fixo" is not taken for one."""
        if u.name:
            return u.name
        if u.intents - {"greeting", "thanks"} or u.question or u.unknown_question:
            return None
        if u.service_id or u.doctor_id or u.insurance_id or not u.wish.empty:
            return None
        return bare_name(text, self.lang)

    async def on_identity(self, text: str, u: Understanding) -> bool:
        return await identity.answer(self.run, text, u)

    async def on_name(self, text: str, u: Understanding) -> bool:
        if self.switches_goal(u):
            return False
        spoken = u.intents - {"greeting", "thanks", "urgent"}
        request = bool(u.service_id or not u.wish.empty or u.insurance_id)
        name = u.name or (None if spoken or request else extract_name(text, self.lang))
        if name is None or len(name) < 3:
            if request:  # "cardiologia amanhã de manhã": part of the request, not a name
                self.run.booking.absorb(u)
                self.state.goal = self.state.goal or "book"
                self.say("ask_name_first")
                return True
            if u.asks:  # "vocês fazem exame de sangue?": a question we cannot answer, not a name
                await self.run.intents.unknown_question()
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
        self.state.given_name = None
        first = address(name, self.lang)
        if u.email or self.state.goal:
            # E-mail is optional and asked once the slot is agreed, not before the offers.
            self.say("thanks_name_email", name=first)
            self.state.stage = "idle"
            await self.run.resume_goal()
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
        await self.run.resume_goal()
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
        # "não vou conseguir ir, preciso adiar": a change of the booking, not a "no" to e-mail.
        if u.has("skip", "no") and not u.has("book") and not self.switches_goal(u):
            self.say("email_skipped")
            return True
        return False

    async def on_service(self, text: str, u: Understanding) -> bool:
        if u.service_id or u.doctor_id:
            self.run.booking.absorb(u)
            await self.run.booking.search()
            return True
        if self.switches_goal(u):
            return False
        self.say("unknown_service", services=self.service_list())
        return True

    async def on_offering(self, text: str, u: Understanding) -> bool:
        state = self.state
        if self.switches_goal(u) and u.option is None:
            return False
        if await self.run.booking.more(u):
            return True
        offer = self.run.booking.pick_offer(u)
        if offer is not None:
            state.chosen = offer["option"]
            state.stage = "confirm"
            self.run.booking.read_back(offer)
            return True
        if self.run.booking.ambiguous and not u.has("reject", "no"):
            self.say("which_option", count=len(state.offers))
            return True
        if self.run.booking.new_request(u):
            self.run.booking.absorb(u)
            await self.run.booking.search()
            return True
        if u.has("reject", "no"):
            state.stage = "ask_wish"
            self.say("ask_wish")
            return True
        if u.has("any") and state.offers:  # "qualquer um" / "любой": the first one offered
            offer = state.offers[0]
            state.chosen, state.stage = offer["option"], "confirm"
            self.run.booking.read_back(offer)
            return True
        if u.has("yes") and len(state.offers) == 1:
            state.chosen = state.offers[0]["option"]
            state.stage = "confirm"
            self.run.booking.read_back(state.offers[0])
            return True
        if u.has("yes"):
            self.say("which_option", count=len(state.offers))
            return True
        if u.has("book") or u.question or u.has("thanks", "bye", "greeting"):
            return False
        if u.clock or u.weekday_mentions:
            # A time or day that is not among the offers: search for it.
            self.run.booking.absorb(u)
            await self.run.booking.search()
            return True
        return False

    async def on_confirm(self, text: str, u: Understanding) -> bool:
        state = self.state
        offer = self.run.booking.offer_by_label(state.chosen)
        if offer is None:
            state.stage = "offering" if state.offers else "idle"
            return False
        other = self.run.booking.pick_offer(u)
        if other is not None and other["option"] != offer["option"]:
            state.chosen = other["option"]
            self.run.booking.read_back(other)
            return True
        if await self.run.booking.more(u):
            return True
        if self.run.booking.new_request(u):
            self.run.booking.absorb(u)
            await self.run.booking.search()
            return True
        if u.has("yes") or (state.goal == "reschedule" and u.has("reschedule")):
            await self.run.booking.execute(offer)
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
                self.run.report_change(result, "cancelled", "cancelled")
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
        chosen = self.run.appointments.pick_appointment(u)
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
        await self.run.appointments.act_on_appointment(chosen, u)
        return True

    async def on_wish(self, text: str, u: Understanding) -> bool:
        if self.switches_goal(u) and not u.has(self.state.goal or "-"):
            return False
        if await self.run.booking.more(u):
            return True
        if not u.wish.empty or u.doctor_id or u.service_id:
            self.run.booking.absorb(u)
            await self.run.booking.search()
            return True
        if u.has("yes", "reject", "any"):
            # "any time" drops the wishes (not the weekdays they cannot come); either way the
            # patient has seen the last offers, so look past them.
            if u.has("any"):
                excluded = list(self.state.wish.get("exclude_weekdays", []))
                self.state.wish = TimeWish(exclude_weekdays=excluded).to_args()
            await self.run.booking.search_after_offers()
            return True
        if u.has("no") and not u.has(self.state.goal or "-"):
            # "não vou conseguir ir, preciso adiar" asks again for the move: not a "no".
            self.state.stage, self.state.goal = "idle", None
            self.say("how_can_help")
            return True
        if u.has(self.state.goal or "-"):
            self.say("ask_wish")
            return True
        return False
