"""Phone calls without OpenAI: Twilio ``<Gather input="speech dtmf">`` + ``<Say>``, driven by the
offline receptionist (the same ``ConversationService`` as the text channels, keyed by CallSid).

Twilio recognises and speaks pt-BR, ru-RU and en-US; the caller answers by voice or keypad
(options 1-3; 1 = yes and 2 = no when a yes/no is asked).
"""

from __future__ import annotations

from urllib.parse import urlencode

from twilio.twiml.voice_response import Dial, Gather, VoiceResponse

from voice_agent.voice.twilio.twiml import dialable

TWILIO_LANGUAGES = {"pt-BR": "pt-BR", "ru": "ru-RU", "en": "en-US"}
VOICES = {"pt-BR": "Polly.Camila", "ru": "Polly.Tatyana", "en": "Polly.Joanna"}
YES_NO_STAGES = ("confirm", "confirm_cancel")
KEYPAD_STAGES = ("ask_phone", "verify_identity")
"""Stages that wait for several digits (a phone number, a code, a birth date), ended by #."""
MAX_SILENCES = 2


def twilio_language(language: str) -> str:
    return TWILIO_LANGUAGES.get(language, "en-US")


def _say(parent: VoiceResponse | Gather, text: str, language: str) -> None:
    for paragraph in (p.strip() for p in text.split("\n")):
        if paragraph:
            parent.say(paragraph, language=twilio_language(language), voice=VOICES.get(language))


def gather_twiml(
    text: str, language: str, action_url: str, *, silences: int = 0, many_digits: bool = False
) -> str:
    """Say ``text`` and listen for speech or digits; Twilio posts the result to ``action_url``.

    One key answers a menu; ``many_digits`` (a code, a birth date, a phone number) takes keys
    until # or a pause."""
    response = VoiceResponse()
    joiner = "&" if "?" in action_url else "?"
    url = action_url + (joiner + urlencode({"silences": silences}) if silences else "")
    keys: dict[str, object] = {"finish_on_key": "#"} if many_digits else {"num_digits": 1}
    gather = Gather(
        input="speech dtmf",
        action=url,
        method="POST",
        language=twilio_language(language),
        speech_timeout="auto",
        timeout=6,
        action_on_empty_result=True,
        **keys,
    )
    _say(gather, text, language)
    response.append(gather)
    return str(response)


def goodbye_twiml(text: str, language: str) -> str:
    response = VoiceResponse()
    _say(response, text, language)
    response.hangup()
    return str(response)


def transfer_twiml(text: str, language: str, staff_phone: str, caller_id: str | None) -> str:
    response = VoiceResponse()
    _say(response, text, language)
    dial = Dial(caller_id=dialable(caller_id) if caller_id else None, timeout=30)
    dial.number(dialable(staff_phone))
    response.append(dial)
    return str(response)


def redirect_twiml(start_url: str) -> str:
    """Hand a call to the no-AI receptionist: Twilio re-posts the call's parameters there."""
    response = VoiceResponse()
    response.redirect(start_url, method="POST")
    return str(response)


def digits_to_text(digits: str, stage: str, yes: str, no: str) -> str:
    """Keypad answers as words: 1/2 mean yes/no when a yes/no is pending, else option numbers."""
    digits = digits.strip().rstrip("#")
    if stage in YES_NO_STAGES and digits in ("1", "2"):
        return yes if digits == "1" else no
    return digits
