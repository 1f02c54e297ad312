"""With OpenAI configured, a red flag never waits on (or depends on) the model: the guard answers
before the Responses loop, and the next turn's model sees what was said."""

from __future__ import annotations

from tests.fakes.openai_responses import FakeOpenAIResponses
from tests.integration.test_llm_text import PHONE, llm_services, say  # noqa: F401 (fixtures)
from voice_agent.conversation.engine import ConversationService
from voice_agent.services import Services


async def test_the_guard_answers_before_the_model(
    fake: FakeOpenAIResponses,
    llm_services: Services,  # noqa: F811
) -> None:
    conversations = ConversationService(llm_services)
    assert conversations.llm is not None
    fake.script = [say("Claro, posso ajudar com a consulta.")]
    reply = await conversations.handle(
        "whatsapp", PHONE, "meu pai caiu e está desacordado", phone=PHONE, phone_verified=True
    )
    assert reply.engine == "safety" and reply.emergency == "unconscious"
    assert "192" in reply.text
    assert fake.requests == []  # the model was not asked
    alerts = [m for k, m in llm_services.alerter.sent if k.startswith("emergency")]  # type: ignore[attr-defined]
    assert len(alerts) == 1 and PHONE in alerts[0]
    later = await conversations.handle("whatsapp", PHONE, "ok, obrigado", phone=PHONE)
    assert later.engine == "llm"
    history = [item["content"] for item in fake.requests[0]["input"]]
    assert "meu pai caiu e está desacordado" in history[0] and "192" in history[1]
    assert fake.problems == []
