"""The second call transport: Twilio → OpenAI Realtime over SIP, this app on the sideband.

The audio never reaches this process. OpenAI announces a call with a signed webhook
(:mod:`.webhook`), the app accepts it with the receptionist's session config or refuses it
(:mod:`.control`), then runs tools, the call record, limits and safety over a sideband
websocket to the same session (:mod:`.sideband`). :mod:`.headers` reads who is calling from the
SIP INVITE; :mod:`.transport` decides which transport a dialled number uses and builds the TwiML
that sends a Twilio call to OpenAI. See docs/sip.md.
"""
