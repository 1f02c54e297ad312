"""TwiML documents of the voice channel, built with the SDK's VoiceResponse."""

from __future__ import annotations

from twilio.twiml.voice_response import Connect, Dial, VoiceResponse


def stream_twiml(
    stream_url: str, parameters: dict[str, str], status_callback: str, after_url: str
) -> str:
    """Connect the call to our media stream; when we close the stream, Twilio asks what next."""
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(
        url=stream_url, status_callback=status_callback, status_callback_method="POST"
    )
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    response.redirect(after_url, method="POST")
    return str(response)


def dialable(phone: str) -> str:
    """``+55 11 3456-7801`` as Twilio wants it in ``<Dial>``/``<Number>``: ``+551134567801``."""
    if phone.startswith("+"):
        return "+" + "".join(ch for ch in phone if ch.isdigit())
    return phone.strip()


def transfer_twiml(
    staff_phone: str, say: str | None, language: str, whisper_url: str | None, caller_id: str
) -> str:
    """Put the caller through to staff; staff first hear a one-line summary (whisper)."""
    response = VoiceResponse()
    if say:
        response.say(say, language=language)
    staff_phone = dialable(staff_phone)
    dial = Dial(caller_id=dialable(caller_id) if caller_id else None, timeout=30)
    if whisper_url:
        dial.number(staff_phone, url=whisper_url, method="POST")
    else:
        dial.number(staff_phone)
    response.append(dial)
    return str(response)


def say_twiml(text: str, language: str, *, hangup: bool = True) -> str:
    response = VoiceResponse()
    response.say(text, language=language)
    if hangup:
        response.hangup()
    return str(response)


def hangup_twiml() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


def apology_then_gather_twiml(apology: str, language: str, gather_start_url: str) -> str:
    """Without the AI voice: a short apology, then the no-AI receptionist (Gather + Say)."""
    response = VoiceResponse()
    response.say(apology, language=language)
    response.redirect(gather_start_url, method="POST")
    return str(response)
