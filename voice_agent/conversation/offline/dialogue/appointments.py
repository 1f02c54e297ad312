"""The patient's existing appointments: listing them, and picking the one to cancel, move or
confirm (after the identity check when the number is not verified)."""

from __future__ import annotations

from typing import Any

from voice_agent.conversation.offline.dialogue import identity
from voice_agent.conversation.offline.dialogue.part import Part, weekday_of
from voice_agent.conversation.offline.nlu import Understanding


class Appointments(Part):
    """List, cancel, reschedule and confirm-attendance flows over ``list_my_appointments``."""

    async def start_change(self, goal: str, u: Understanding | None) -> None:
        state = self.state
        state.goal = goal
        state.target = None
        if self.run.ask_phone_first():
            return
        result = await self.call("list_my_appointments")
        if identity.refused(result):
            await identity.ask(self.run, goal)
            return
        if not result.ok:
            self.tool_problem(result)
            return
        appointments = result.output.get("appointments") or []
        for appointment in appointments:
            appointment["service_id"] = self.run.service_id_of(appointment)
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
                self.run.report_change(result, "confirmed", "confirmed_attendance")
            else:
                self.tool_problem(result)
        else:
            state.service_id = appointment.get("service_id")
            if u is not None and (not u.wish.empty or u.doctor_id or u.has("postpone")):
                self.run.booking.absorb(u)
                await self.run.booking.search()
            else:
                state.wish = {}
                state.stage = "ask_wish"
                self.say("ask_wish_reschedule", **appointment)

    async def list_appointments(self) -> None:
        if self.run.ask_phone_first():
            self.state.goal = None
            return
        result = await self.call("list_my_appointments")
        if identity.refused(result):
            await identity.ask(self.run, "list")
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
            if result.output.get("note"):  # unverified: only what was booked here is shown
                self.say("list_booked_here_only")

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
            matches = [a for a in matches if weekday_of(a["date"]) in u.weekday_mentions] or matches
        if u.clock:
            matches = [a for a in matches if a["time"] == u.clock.strftime("%H:%M")]
        narrowed = matches is not candidates
        return matches[0] if narrowed and len(matches) == 1 else None
