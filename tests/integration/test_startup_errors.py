"""Start-up and configuration as a new user meets them: one line naming what to fix (never a
traceback) for a bad setting, an unreachable database or a missing clinic file; a clinic file
that differs from the loaded one is reported; the embedded database lives in the per-user data
folder, whatever the current directory."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import make_settings
from voice_agent.cli import app
from voice_agent.cli.context import CliRuntime
from voice_agent.clock import FixedClock
from voice_agent.settings import DEFAULT_CLINIC_FILE, Settings


def _run(args: list[str], settings: Settings, clock: FixedClock):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, args, obj=CliRuntime(clock=clock, settings=settings))


@pytest.mark.parametrize(
    "command", [["serve"], ["clinic", "show"], ["outbox", "list"], ["db", "upgrade"], ["alerts"]]
)
def test_an_unreachable_database_is_one_line(command: list[str], clock: FixedClock) -> None:
    settings = make_settings("postgresql://postgres:hunter2@127.0.0.1:9/nowhere")
    result = _run(command, settings, clock)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: cannot reach the database postgresql://postgres:***@")
    assert "VOICE_AGENT_DATABASE_URL" in lines[0] and "hunter2" not in lines[0]
    assert "Traceback" not in result.output


def test_a_missing_clinic_file_is_one_line(tmp_path: Path, clock: FixedClock) -> None:
    settings = make_settings(
        f"sqlite:///{tmp_path / 'fresh.db'}", clinic_file=tmp_path / "missing.yaml"
    )
    result = _run(["clinic", "show"], settings, clock)
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"error: clinic file {tmp_path / 'missing.yaml'}: cannot read: No such file or "
        "directory (fix the file or VOICE_AGENT_CLINIC_FILE)"
    )


def test_a_bad_setting_from_the_environment_is_one_line(
    monkeypatch: pytest.MonkeyPatch, clock: FixedClock
) -> None:
    monkeypatch.setenv("VOICE_AGENT_DATABASE_URL", "mysql://somewhere/db")
    result = CliRunner().invoke(app, ["clinic", "show"], obj=CliRuntime(clock=clock))
    assert result.exit_code == 2
    assert result.output.startswith("error: invalid configuration: VOICE_AGENT_DATABASE_URL")
    assert len(result.output.strip().splitlines()) == 1


def test_a_clinic_file_that_differs_from_the_loaded_one_is_reported(
    tmp_path: Path, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    clinic_file = tmp_path / "clinic.yaml"
    clinic_file.write_text(DEFAULT_CLINIC_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    settings = make_settings(f"sqlite:///{tmp_path / 'c.db'}", clinic_file=clinic_file)
    assert _run(["clinic", "show"], settings, clock).exit_code == 0
    assert "differs" not in caplog.text
    text = clinic_file.read_text(encoding="utf-8").replace(
        "name: Clínica São Lucas", "name: Clínica Nova", 1
    )
    clinic_file.write_text(text, encoding="utf-8")
    with caplog.at_level(logging.WARNING):
        result = _run(["clinic", "show"], settings, clock)
    assert result.output.startswith("Clínica São Lucas")  # still the loaded one …
    assert (  # … and the start said so, naming the file and the command
        f"the clinic file {clinic_file} differs from the clinic in force (Clínica São Lucas); "
        f"run `voice-agent clinic load {clinic_file}` to use it"
    ) in caplog.text


def test_the_embedded_database_lives_in_the_per_user_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VOICE_AGENT_DATABASE_URL", raising=False)
    monkeypatch.setenv("VOICE_AGENT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'voice-agent.db'}"
    monkeypatch.delenv("VOICE_AGENT_DATA_DIR")
    default = Settings().database_url
    assert default.endswith("/voice-agent/voice-agent.db") and str(tmp_path) not in default
