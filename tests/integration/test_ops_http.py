"""The platform's probes and metrics through HTTP: /healthz, /readyz (database, migrations,
scheduler) and Prometheus /metrics after real traffic."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from tests.conftest import make_settings
from voice_agent.alerts import ConsoleAlerter
from voice_agent.app import create_app
from voice_agent.clock import FixedClock
from voice_agent.services import build_services

LOCAL = ("127.0.0.1", 50000)


def _samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_probes_and_metrics(
    db_kind: str, make_engine_for: Callable[[str], Engine], clock: FixedClock
) -> None:
    engine = make_engine_for(db_kind)
    settings = make_settings(engine.url.render_as_string(hide_password=False))
    services = build_services(settings, clock=clock, alerter=ConsoleAlerter(), engine=engine)
    app = create_app(settings, services)
    with TestClient(app, client=LOCAL) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "scheduler": "ok"}
        before = _samples(client.get("/metrics").text)
        reply = client.post(
            "/api/chat",
            json={
                "session_id": "ops-1",
                "text": "quero marcar clínico geral amanhã",
                "phone": "+5511987659001",
            },
        )
        assert reply.status_code == 200, reply.text
        reply = client.post(
            "/api/chat",
            json={
                "session_id": "ops-1",
                "text": "Maria Aparecida Silva",
                "phone": "+5511987659001",
            },
        )
        assert reply.status_code == 200, reply.text
        response = client.get("/metrics")
        assert response.headers["content-type"].startswith("text/plain")
        after = _samples(response.text)
        turns = ("voice_agent_turns_total", (("channel", "web"), ("engine", "offline")))
        assert after[turns] == before.get(turns, 0) + 2

        def tool_calls(samples: dict) -> float:
            return sum(
                v for (name, _), v in samples.items() if name == "voice_agent_tool_seconds_count"
            )

        assert tool_calls(after) >= tool_calls(before) + 1
        assert ("voice_agent_outbox_rows", (("status", "dead"),)) in after
        assert ("voice_agent_calls_in_progress", ()) in after
        # The schema falls behind the code: not ready, and the reason says so.
        with engine.begin() as connection:
            connection.execute(
                text("UPDATE alembic_version SET version_num = '0001_initial_schema'")
            )
        not_ready = client.get("/readyz")
        assert not_ready.status_code == 503
        assert "code expects" in not_ready.json()["checks"]["database"]
    services.close()
