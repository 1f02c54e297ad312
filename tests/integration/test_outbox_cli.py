"""`voice-agent outbox` shows pending, failed and dead rows, and a dead row can be retried."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from voice_agent.cli import app
from voice_agent.clock import SystemClock
from voice_agent.integrations.outbox import Outbox
from voice_agent.store.db import make_engine, transaction
from voice_agent.store.outbox_tables import OutboxRow, OutboxStatus


def test_list_retry_and_deliver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("VOICE_AGENT_DATABASE_URL", url)
    runner = CliRunner()
    assert runner.invoke(app, ["outbox", "list"]).exit_code == 0  # creates the schema
    engine = make_engine(url)
    outbox = Outbox(engine, SystemClock())
    outbox.enqueue("alert", "alert:test:1", {"kind": "test", "message": "hello"})
    outbox.enqueue("alert", "alert:test:2", {"kind": "test", "message": "again"})
    with transaction(engine) as session:
        row = session.get(OutboxRow, 1)
        assert row is not None
        row.status, row.attempts, row.last_error = OutboxStatus.dead, 10, "ConnectionError: down"
        session.add(row)
    engine.dispose()

    listed = runner.invoke(app, ["outbox", "list"])
    assert listed.exit_code == 0, listed.output
    assert "pending 1 (failed 0) · dead 1 · done 0" in listed.output
    dead = runner.invoke(app, ["outbox", "list", "--status", "dead"])
    assert "alert" in dead.output and "ConnectionError: down" in dead.output
    assert runner.invoke(app, ["outbox", "retry", "2"]).exit_code == 1  # not dead
    retried = runner.invoke(app, ["outbox", "retry", "1"])
    assert retried.exit_code == 0 and "1 row(s) queued again" in retried.output
    delivered = runner.invoke(app, ["outbox", "deliver"])
    assert "delivered 2" in delivered.output, delivered.output
    assert "dead 0 · done 2" in runner.invoke(app, ["outbox", "list"]).output
    reconcile = runner.invoke(app, ["calendar", "reconcile"])
    assert "nothing to reconcile" in reconcile.output
