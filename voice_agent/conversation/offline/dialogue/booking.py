"""The booking flow: wishes absorbed turn by turn, slots searched and offered, the chosen offer
read back and, on an explicit yes, booked (or moved, for a reschedule)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from voice_agent.conversation.offline.dialogue.part import Part, weekday_of
from voice_agent.conversation.offline.feasibility import Obstacle, check
from voice_agent.conversation.offline.names import address, relative
from voice_agent.conversation.offline.nlu import TimeWish, Understanding
from voice_agent.i18n import say_date, say_when
from voice_agent.tools.registry import ToolResult

if TYPE_CHECKING:
    from voice_agent.conversation.offline.dialogue.core import Run


class Booking(Part):
    """Search, offer, read back and book; rescheduling uses it too (a new slot, an old visit)."""

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        self.given_name: str | None = None
        self.given_email: str | None = None
        self.past_asked: list[Obstacle] = []
        self.today_asked = False
        self.ambiguous = False

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
        # A day gone: the search goes on from the first day the clinic books.
        gone = "date_in_past" if self.clinic.booking.start_tomorrow else "date_in_past_today"
        self.past_asked = [Obstacle(gone, {"date": say_date(d, self.lang)}) for d in u.wish.past]
        if not u.wish.empty:
            old = TimeWish.from_args(state.wish)
            state.wish = u.wish.merged_over(old).to_args()
            self.today_asked = u.wish.today_asked
        else:
            self.today_asked = False
        if u.has("postpone") and state.goal == "reschedule" and state.target:
            day = date.fromisoformat(state.target["date"])
            state.wish = TimeWish.from_args(state.wish).later_than(day).to_args()

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
        if self.run.ask_phone_first():
            return
        patient = await self.patient_or_none()
        if patient is not None and not patient.full_name:
            given = self.given_name or state.given_name
            if given:
                arguments: dict[str, Any] = {"full_name": given}
                if self.given_email:
                    arguments["email"] = self.given_email
                result = await self.call("register_patient", **arguments)
                if result.ok:
                    state.given_name = None
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

    async def more(self, u: Understanding) -> bool:
        """ "Other times" / "другие" / "outros": the next times after the last one offered,
        under the wishes so far and any named now ("others, but in the afternoon")."""
        if not u.has("more", "earlier") or u.option is not None or u.clock is not None:
            return False
        if u.service_id and u.service_id != self.state.service_id:
            return False  # another service altogether: a new search, not "more of the same"
        self.absorb(u)
        self.state.chosen = None
        if u.has("earlier"):
            await self.search_before_offers(keep_days=u.wish.has_day())
        else:
            await self.search_after_offers()
        return True

    async def search_before_offers(self, keep_days: bool = False) -> None:
        """ "Tem mais cedo?" / "пораньше" / "sooner": the bookable days before the first offer,
        then its day before its time (not "more" times later that day, as before); with nothing
        sooner the patient is told so and the offers' days are searched again."""
        state = self.state
        first = min(((o["date"], o["time"]) for o in state.offers), default=None)
        if first is None:
            await self.search()
            return
        wish = TimeWish.from_args(state.wish)
        start = self.today + timedelta(days=1 if self.clinic.booking.start_tomorrow else 0)
        sooner = wish.before(
            date.fromisoformat(first[0]), time.fromisoformat(first[1]), start, keep_days=keep_days
        )
        # With nothing sooner the offers' days are searched again (their holds were released).
        again = replace(
            wish,
            dates=sorted({date.fromisoformat(o["date"]) for o in state.offers}),
            date_from=None,
            date_to=None,
            weekdays=[],
        )
        await self.search([w.to_args() for w in sooner], sooner=again.to_args())

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

    async def search(
        self,
        wishes: list[dict[str, Any]] | None = None,
        after: bool = False,
        sooner: dict[str, Any] | None = None,
        prefix: str = "",
    ) -> None:
        """Find and offer slots for the wishes (``state.wish`` unless ``wishes`` are given: then
        each is tried in turn until one has free times). ``sooner``: the wishes ask for times
        before the offers; when they find nothing, the patient is told so and these wishes (the
        offers' days) are searched again: the search released the offers' holds. ``prefix``:
        said before the offers."""
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
        result: ToolResult | None = None
        today = self.today.isoformat()
        same_day = not self.clinic.booking.start_tomorrow
        for wish in [state.wish] if wishes is None else wishes:
            arguments = {**common, **wish}
            if same_day and self.today_asked:
                # Today first; when nothing is left today, the same wishes from tomorrow on.
                result = await self.call("find_slots", **{**arguments, "dates": [today]})
                if not result.ok or result.output.get("options"):
                    break
                prefix = self.text_of("today_full")
            elif not same_day and (
                self.today_asked or (wish.get("dates") and min(wish["dates"]) <= today)
            ):
                prefix = self.text_of("same_day")
                dates = [d for d in wish.get("dates", []) if d > today]
                arguments.pop("dates", None)
                if dates:
                    arguments["dates"] = dates
            result = await self.call("find_slots", **arguments)
            if not result.ok or result.output.get("options"):
                break
        if sooner is not None and (
            result is None or (result.ok and not result.output.get("options"))
        ):
            await self.search([sooner], prefix=self.text_of("nothing_sooner"))
            return
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
            action = "rescheduled"
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
            action = "booked"
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
        self.run.report_change(result, action, action)
        state.stage, state.goal, state.target, state.chosen = "idle", None, None, None
        state.wish, state.doctor_id = {}, None
        if action == "booked" and state.for_whom:
            self.say("booked_for", name=state.for_whom)
            state.for_whom = None
        if action == "booked":
            patient = await self.patient_or_none()
            if patient is not None and not patient.email:
                state.stage = "ask_email_optional"
                self.say("ask_email_optional")

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
            by_day = [o for o in matches if weekday_of(o["date"]) in u.weekday_mentions]
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
