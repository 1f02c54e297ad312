"""The OpenAI text receptionist on the Responses API (WhatsApp/SMS, web chat, terminal chat).

``loop.py`` runs a turn; ``stream.py`` reads one streamed response; ``items.py`` holds the
conversation items and the yes-lock; ``schemas.py`` the strict function tools; ``models.py``
which optional parameters each model family takes; ``prompt.py`` the instructions.
"""

from voice_agent.conversation.openai_text.loop import LLMGaveUp, ResponsesConversation, TurnStats

__all__ = ["LLMGaveUp", "ResponsesConversation", "TurnStats"]
