"""The text channels' conversation layer: one ``ConversationService`` for WhatsApp/SMS, web
chat, the terminal and the no-AI voice fallback, with an OpenAI loop and an offline engine."""
