"""``POST /api/chat/stream`` over HTTP: the OpenAI reply arrives as server-sent events while it
is written, "typing" while tools run, a failed stream is discarded for the offline answer, and
the route keeps /api/chat's validation and access rules."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.fakes.openai_responses import Call, Cut, Fail, FakeOpenAIResponses, Say
from tests.integration.test_llm_text import PHONE, services_for
from voice_agent.app import create_app
from voice_agent.services import Services

LOCAL = ("127.0.0.1", 50000)


@pytest.fixture
def services(tmp_path: Path, fake: FakeOpenAIResponses) -> Iterator[Services]:
    services = services_for(tmp_path, fake)
    yield services
    services.close()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services.settings, services), client=LOCAL) as test_client:
        yield test_client


def events(client: TestClient, text: str, **extra: Any) -> list[tuple[str, Any]]:
    """The (event, data) pairs of one streamed turn, in order."""
    body = {"session_id": "web-stream", "text": text, "phone": PHONE, **extra}
    found: list[tuple[str, Any]] = []
    with client.stream("POST", "/api/chat/stream", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                found.append((name, json.loads(line.removeprefix("data: "))))
    return found


def test_the_reply_streams_and_typing_shows_while_tools_run(
    client: TestClient, fake: FakeOpenAIResponses
) -> None:
    fake.script = [
        Call(
            [("find_slots", {"service": "dermatologia", "dates": ["2026-11-24"]})],
            text="Vou ver a agenda.",
        ),
        Say("Tenho três horários amanhã. Qual prefere?", chunks=4),
    ]
    stream = events(client, "Quero dermatologia amanhã")
    names = [name for name, _ in stream]
    assert names[0] == "typing" and stream[0][1] == {"tool": None}
    assert names[-1] == "reply" and names.count("reply") == 1
    # The preamble, "typing" for the search, then the answer in pieces, before the reply.
    typing_at = names.index("typing", 1)
    assert stream[typing_at][1] == {"tool": "find_slots"}
    deltas = [data["text"] for name, data in stream if name == "delta"]
    assert "".join(deltas[: names[:typing_at].count("delta")]) == "Vou ver a agenda."
    assert len(deltas) >= 5
    reply = stream[-1][1]
    assert "".join(deltas) == reply["reply"]
    assert reply["reply"] == "Vou ver a agenda.\n\nTenho três horários amanhã. Qual prefere?"
    assert reply["engine"] == "llm" and reply["state"]["stage"] == "offering"
    assert [offer["option"] for offer in reply["state"]["offers"]] == ["1", "2", "3"]
    assert fake.problems == []


def test_a_broken_stream_is_discarded_for_the_offline_answer(
    client: TestClient, fake: FakeOpenAIResponses
) -> None:
    fake.script = [Cut(abort=True)]
    stream = events(client, "Olá, bom dia")
    names = [name for name, _ in stream]
    assert names == ["typing", "delta", "discard", "reply"]
    reply = stream[-1][1]
    assert reply["engine"] == "offline" and "Clínica São Lucas" in reply["reply"]
    assert "Um momento" not in reply["reply"]


def test_whatsapp_gets_the_final_text_only(client: TestClient, fake: FakeOpenAIResponses) -> None:
    """The same turn on /api/chat (no stream) answers once, with the whole text."""
    fake.script = [Say("Bom dia! Como posso ajudar?", chunks=5)]
    response = client.post("/api/chat", json={"session_id": "plain", "text": "Bom dia"})
    assert response.status_code == 200
    assert response.json()["reply"] == "Bom dia! Como posso ajudar?"


def test_the_stream_keeps_the_chat_rules(services: Services, fake: FakeOpenAIResponses) -> None:
    app = create_app(services.settings, services)
    body = {"session_id": "s1", "text": "oi"}
    with TestClient(app, client=LOCAL) as local:
        assert local.post("/api/chat/stream", json={"session_id": "bad id!"}).status_code == 422
        assert local.post("/api/chat/stream", content=b"x" * 300_000).status_code == 413
    with TestClient(app, client=("203.0.113.9", 1)) as remote:
        assert remote.post("/api/chat/stream", json=body).status_code == 403
    services.settings.chat_api_token = SecretStr("staff-secret-0123456789")
    with TestClient(create_app(services.settings, services), client=("203.0.113.9", 1)) as remote:
        assert remote.post("/api/chat/stream", json=body).status_code == 401
        fake.script = [Fail(500), Fail(500)]  # OpenAI down: the offline receptionist answers
        headers = {"Authorization": "Bearer staff-secret-0123456789"}
        with remote.stream("POST", "/api/chat/stream", json=body, headers=headers) as ok:
            text = "".join(ok.iter_text())
        assert ok.status_code == 200 and "event: reply" in text
    assert fake.problems == []


async def test_the_terminal_prints_the_reply_as_it_is_written(
    services: Services, fake: FakeOpenAIResponses
) -> None:
    import io

    from voice_agent.conversation.terminal import run_chat

    fake.script = [Say("Bom dia! Em que posso ajudar?", chunks=3), Cut(abort=True)]
    out = io.StringIO()
    await run_chat(
        services,
        phone=PHONE,
        language=None,
        stdin=io.StringIO("Bom dia\nOlá\n"),
        stdout=out,
        stream=True,
    )
    first, second = out.getvalue().split("\n\n")[:2]
    assert first == "Bom dia! Em que posso ajudar?"  # streamed, not printed twice
    assert second.startswith("Um momento …\n") and "Clínica São Lucas" in second
    assert fake.problems == []
