"""A captured, validly signed voice webhook replayed after its call ended (or while its stream
runs) opens no new OpenAI session: no stream token is minted again for that call."""

from __future__ import annotations

from xml.etree import ElementTree

from tests.e2e.harness import ACCOUNT_SID, CALLER, live_call
from tests.fakes.realtime_script import SpeakTurn
from tests.fakes.twilio_media import TwilioMediaSimulator

CALL_SID = "CA" + "4" * 32
PARAMS = {
    "CallSid": CALL_SID,
    "From": CALLER,
    "To": "+551134567800",
    "AccountSid": ACCOUNT_SID,
    "Direction": "inbound",
}


async def test_a_replayed_voice_webhook_gets_no_new_stream(tmp_path, clock) -> None:
    script = [SpeakTurn("Clínica São Lucas, bom dia!", audio_ms=300)]
    async with live_call(tmp_path, clock, script) as (realtime, app):
        await app.incoming_call(CALL_SID)
        retried = await app.post_twilio("/twilio/voice", PARAMS)  # Twilio's own retry: fine
        assert "<Stream" in retried.text
        token = retried.text.split('name="token" value="')[1].split('"')[0]
        sim = TwilioMediaSimulator(
            app.media_url, call_sid=CALL_SID, custom_parameters={"token": token}, speed=0.05
        )
        await sim.connect()
        await sim.wait_for(lambda s: len(s.played) > 0, timeout=10)
        during = await app.post_twilio("/twilio/voice", PARAMS)  # replayed mid-call
        assert during.status_code == 200 and "<Stream" not in during.text
        await sim.hangup()  # the caller hangs up: the call ends
        await sim.wait_closed(timeout=20)
        after = await app.post_twilio("/twilio/voice", PARAMS)  # replayed after the call
        assert after.status_code == 200
        root = ElementTree.fromstring(after.text)
        assert root.find("Hangup") is not None and root.find(".//Stream") is None
    assert len(realtime.sessions) == 1
