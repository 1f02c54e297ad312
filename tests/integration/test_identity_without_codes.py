"""A clinic that cannot send codes (no Twilio configured, the embedded default): what the model
reads when an unverified web-chat caller asks about their appointments. With a date of birth on
file it asks for it; without one there is nothing to check, and the model is told to offer the
staff's call-back instead of asking for a date it cannot verify."""

from __future__ import annotations

from datetime import date

import pytest

from voice_agent.services import Services
from voice_agent.tools.catalog import build_registry
from voice_agent.tools.context import ToolContext

REGISTRY = build_registry()
PHONE = "+5511987650077"


@pytest.mark.parametrize(
    ("birth_date", "told"),
    [(None, "request_callback"), (date(1980, 3, 15), "date of birth and call verify_identity")],
)
async def test_the_model_is_told_how_to_go_on(
    any_services: Services, birth_date: date | None, told: str
) -> None:
    assert not any_services.identity.can_send_codes
    patient = await any_services.patients.find_or_create(PHONE, "pt-BR")
    await any_services.patients.update(
        patient.id, full_name="Fernanda Costa", birth_date=birth_date
    )
    ctx = ToolContext(
        services=any_services,
        channel="web",
        conversation_id="conv-web-1",
        caller_phone=PHONE,
        language="pt-BR",
    )
    for tool in ("list_my_appointments", "send_verification_code"):
        refused = await REGISTRY.dispatch(tool, {}, ctx)
        assert not refused.ok and told in refused.output["error"], refused.output
        assert "appointments" not in refused.output
