"""Twilio's side of a call: Media Streams frames, TwiML, call tokens, the no-AI keypad path,
and call control through the REST API. Nothing here knows OpenAI."""
