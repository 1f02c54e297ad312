"""Staff read calls back: a real call through the app (uvicorn, the SDK, the local fakes), then
`voice-agent calls` lists it (caller masked) and `voice-agent call SID` shows its timeline."""

from __future__ import annotations

from typer.testing import CliRunner

from tests.e2e.harness import CALLER, live_call
from tests.e2e.test_voice_call import CALL_SID, speak
from tests.e2e.test_voice_limits import connect
from tests.fakes.polling import poll
from tests.fakes.realtime_script import FunctionCallTurn, SpeakTurn, UserTurn
from voice_agent.cli import app as cli
from voice_agent.patients.service import mask_phone
from voice_agent.voice.call_records import get_call


async def test_calls_are_listed_and_a_call_reads_back_as_a_timeline(tmp_path, clock) -> None:
    script = [
        SpeakTurn("Clínica São Lucas, bom dia! Em que posso ajudar?", audio_ms=300),
        UserTurn("Quero marcar uma consulta com cardiologista."),
        FunctionCallTurn("find_slots", {"service": "cardiologia"}),
        SpeakTurn("Tenho terça às nove com o Dr. Carlos.", audio_ms=300),
    ]
    async with live_call(tmp_path, clock, script) as (realtime, app):
        sim = await connect(app)
        await speak(sim, "pt_br_greeting_cardiology")
        answer = script[-1]
        await realtime.wait_for(
            lambda r: any(
                x.step == answer and x.status != "in_progress" for x in r.session.responses
            ),
            timeout=15,
        )
        await sim.wait_idle(timeout=10)
        await sim.hangup()
        # The call's record closes once its tasks have wound down.
        await poll(lambda: getattr(get_call(app.services.engine, CALL_SID), "ended_at", None), 5)
        url = app.services.settings.database_url
    runner = CliRunner()
    env = {"VOICE_AGENT_DATABASE_URL": url}

    listed = runner.invoke(cli, ["calls"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "caller_hung_up: 1" in listed.output
    assert CALL_SID in listed.output and mask_phone(CALLER) in listed.output
    assert CALLER not in listed.output  # the list masks the caller's number
    assert runner.invoke(cli, ["calls", "--outcome", "failed"], env=env).output.strip() == ""
    assert CALL_SID not in runner.invoke(cli, ["calls", "--flagged"], env=env).output
    assert CALL_SID in runner.invoke(cli, ["calls", "--since", "2020-01-01"], env=env).output
    bad = runner.invoke(cli, ["calls", "--since", "yesterday"], env=env)
    assert bad.exit_code == 2 and "--since" in bad.output
    wrong = runner.invoke(cli, ["calls", "--outcome", "great"], env=env)
    assert wrong.exit_code == 2

    shown = runner.invoke(cli, ["call", CALL_SID], env=env)
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert CALL_SID in lines[0] and "caller_hung_up" in lines[0]
    timeline = "\n".join(lines[1:])
    assert "caller" in timeline and "Quero marcar uma consulta com cardiologista." in timeline
    assert 'find_slots({"service": "cardiologia"}) ok:' in timeline
    assert "receptionist" in timeline and "Tenho terça às nove" in timeline
    missing = runner.invoke(cli, ["call", "CA" + "0" * 32], env=env)
    assert missing.exit_code == 1 and "no call" in missing.output
