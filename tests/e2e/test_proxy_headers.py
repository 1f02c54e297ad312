"""The loopback-only web chat under a real uvicorn that believes proxy headers (its default for
peers on 127.0.0.1, as with FORWARDED_ALLOW_IPS='*'): a forwarded request is never local."""

from __future__ import annotations

import httpx

from tests.e2e.harness import live_app

BODY = {"session_id": "proxy", "text": "oi", "phone": "+5511987653010"}


async def test_a_forwarded_request_does_not_pass_as_this_machine(tmp_path, clock) -> None:
    async with live_app(tmp_path, clock, None) as app:
        base = f"http://127.0.0.1:{app.port}"
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.post("/api/chat", json=BODY)).status_code == 200
            for headers in (
                {"X-Forwarded-For": "127.0.0.1"},
                {"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "https"},
                {"Forwarded": "for=127.0.0.1;proto=https"},
            ):
                response = await client.post("/api/chat", json=BODY, headers=headers)
                assert response.status_code == 403, headers
                assert "VOICE_AGENT_CHAT_API_TOKEN" in response.text
