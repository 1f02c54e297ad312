"""The phone audio path: Twilio Media Streams bridged to the OpenAI Realtime API."""
