"""OpenAI Realtime's side of a call: the connection, the session config, the instructions, and
the typed server events the bridge dispatches on. Nothing here knows Twilio."""
