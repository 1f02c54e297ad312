"""The tool sets each channel offers, built from the one registry.

A channel builds its registry where the channel is built (the voice runtime, the text
conversation service), once per process: the wiring (``services.py``) knows no tools.
"""

from __future__ import annotations

from voice_agent.tools import booking, call_control, clinic_info, identity, patients
from voice_agent.tools.registry import ToolRegistry

CORE_TOOLS = (
    booking.find_slots,
    booking.book_appointment,
    booking.reschedule_appointment,
    booking.cancel_appointment,
    booking.confirm_appointment,
    booking.list_my_appointments,
    patients.register_patient,
    patients.update_patient,
    clinic_info.clinic_info,
    identity.send_verification_code,
    identity.verify_identity,
    call_control.request_callback,
)
CALL_TOOLS = (call_control.end_call, call_control.transfer_to_staff, call_control.report_emergency)
CONFIRMATION_TOOLS = (
    "list_my_appointments",
    "confirm_appointment",
    "cancel_appointment",
    "find_slots",
    "reschedule_appointment",
    "clinic_info",
    "end_call",
    "transfer_to_staff",
    "report_emergency",
    "request_callback",
)


def build_registry(default_timeout: float = 10.0) -> ToolRegistry:
    """Every tool; text channels use ``text_registry`` which leaves call control out."""
    registry = ToolRegistry(default_timeout)
    for function in (*CORE_TOOLS, *CALL_TOOLS):
        registry.add(function, timeout=30.0 if function is booking.find_slots else None)
    return registry


def text_registry(registry: ToolRegistry) -> ToolRegistry:
    return registry.subset([f.__name__ for f in CORE_TOOLS])


def confirmation_registry(registry: ToolRegistry) -> ToolRegistry:
    return registry.subset(list(CONFIRMATION_TOOLS))
