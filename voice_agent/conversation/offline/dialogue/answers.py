"""Answers about the clinic: prices, insurances and what they cover, doctors, hospitals, hours
and contact, from ``clinic_info`` (and the clinic file for plan-with-doctor questions)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from voice_agent.conversation.offline.dialogue.part import Part
from voice_agent.conversation.offline.feasibility import check
from voice_agent.conversation.offline.nlu import WEEKDAY_IDS, TimeWish, Understanding
from voice_agent.i18n import WEEKDAYS, language_or_default, say_money

if TYPE_CHECKING:
    from voice_agent.conversation.offline.dialogue.core import Run

TOPICS = {
    "ask_prices": "prices",
    "ask_insurances": "insurances",
    "ask_hospitals": "hospitals",
    "ask_doctors": "doctors",
    "ask_hours": "hours",
    "ask_address": "contact",
    "ask_services": "services",
}


class ClinicAnswers(Part):
    """Turns ``clinic_info`` outputs into the patient's language."""

    def __init__(self, run: Run) -> None:
        super().__init__(run)
        self.asked_doctor: str | None = None

    async def answer(self, u: Understanding) -> None:
        intent = u.question or "ask_services"
        topic = TOPICS[intent]
        if u.doctor_id and u.insurance_id and topic in ("insurances", "prices", "services"):
            self.turn.parts.append(self.plan_with_doctor(u.insurance_id, u.doctor_id))
            self.remember(u)
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
        elif topic == "prices" and self.state.service_id:
            about = self.state.service_id  # "and how much will it cost?": what we talk about
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
        self.remember(u)

    def remember(self, u: Understanding) -> None:
        """What a question was about is what a booking that follows is for: "Do you take Amil
        for pediatrics?" then "can I bring my daughter on Friday?" books pediatrics with Amil
        (it asked "which service?")."""
        state = self.state
        if state.stage not in ("idle", "start") or state.goal not in (None, "book"):
            return
        if u.service_id:
            state.service_id = u.service_id
        if u.doctor_id:
            state.doctor_id = u.doctor_id
        if u.insurance_id:
            state.insurance_id = u.insurance_id

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
            price_lines = []
            for s in output["services"]:
                plans = ", ".join(
                    self.text_of("plan_price", plan=p, price=self.copay(v))
                    for p, v in s["with_insurance"].items()
                )
                plans = self.text_of("plans_part", plans=plans) if plans else ""
                price_lines.append(
                    self.text_of(
                        "info_price_line",
                        service=s["service"],
                        price=s["private_price"] + self.doctor_prices(s),
                        plans=plans,
                        doctors=", ".join(s["doctors"]),
                    )
                )
            key = "info_prices" if topic != "services" else "info_services"
            return self.text_of(key, lines="\n".join(price_lines))
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
