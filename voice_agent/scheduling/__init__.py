"""Scheduling: pure availability, preferences and ranking; the booking service builds on them."""

from voice_agent.scheduling.availability import (
    BookingRules,
    Interval,
    ProblemCode,
    Slot,
    SlotProblem,
    booking_window,
    check_insurance,
    check_slot,
    free_slots,
    free_slots_by_day,
)
from voice_agent.scheduling.preferences import Preferences, candidate_doctors, matches, window
from voice_agent.scheduling.ranking import (
    DefaultScorer,
    Offer,
    RankingContext,
    Reason,
    ReasonCode,
    Scorer,
    rank_offers,
    service_for,
)

__all__ = [
    "BookingRules",
    "DefaultScorer",
    "Interval",
    "Offer",
    "Preferences",
    "ProblemCode",
    "RankingContext",
    "Reason",
    "ReasonCode",
    "Scorer",
    "Slot",
    "SlotProblem",
    "booking_window",
    "candidate_doctors",
    "check_insurance",
    "check_slot",
    "free_slots",
    "free_slots_by_day",
    "matches",
    "rank_offers",
    "service_for",
    "window",
]
