"""Clinic data as versions: an edit validated by the file's own model (errors by field), saved
with its author and what changed, answered by the running receptionist, exported to YAML that
loads back to the same clinic; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import RUSSIAN_CLINIC_FILE, make_settings
from voice_agent.app import create_app
from voice_agent.cli import CliRuntime
from voice_agent.cli import app as cli
from voice_agent.clinic import Clinic, load_clinic_file
from voice_agent.clinic.loader import parse_clinic
from voice_agent.clinic.versions import (
    ClinicEditError,
    changes,
    document,
    export_yaml,
    save_version,
    version,
    versions,
    with_section,
)
from voice_agent.clock import FixedClock
from voice_agent.console.accounts import StaffAccounts, password_hasher
from voice_agent.services import Services
from voice_agent.store.staff_tables import StaffRole

LOCAL = ("127.0.0.1", 50000)


def _priced(clinic: Clinic, service_id: str, price: object) -> list[dict]:
    services = document(clinic)["services"]
    for service in services:
        if service["id"] == service_id:
            service["private_price"] = price
    return services


@pytest.mark.parametrize("path", ["sao_paulo", "moscow"])
def test_an_export_loads_back_to_the_same_clinic(sample_clinic: Clinic, path: str) -> None:
    clinic = sample_clinic if path == "sao_paulo" else load_clinic_file(RUSSIAN_CLINIC_FILE)
    text = export_yaml(clinic)
    assert parse_clinic(text, "export.yaml") == clinic
    assert "null" not in text  # defaults are left out, as a person writes the file


def test_an_edit_is_refused_by_the_model_with_the_field_named(sample_clinic: Clinic) -> None:
    with pytest.raises(ClinicEditError) as bad_price:
        with_section(sample_clinic, "services", _priced(sample_clinic, "ecg", "-5"))
    [(field, reason)] = bad_price.value.fields.items()
    assert field == "services.1.private_price" and "greater than or equal to 0" in reason

    doctors = document(sample_clinic)["doctors"]
    doctors[0]["services"] = [*doctors[0]["services"], "no-such-service"]
    with pytest.raises(ClinicEditError) as broken:
        with_section(sample_clinic, "doctors", doctors)
    assert broken.value.general == ["doctor dr-ana-souza: service 'no-such-service' is not defined"]


def test_changes_name_what_changed_by_id(sample_clinic: Clinic) -> None:
    edited = with_section(sample_clinic, "services", _priced(sample_clinic, "ecg", "135.50"))
    insurances = [i for i in document(edited)["insurances"] if i["id"] != "amil"]
    services = document(edited)["services"]
    for service in services:
        service["insurance_prices"].pop("amil", None)
    edited = with_section(with_section(edited, "services", services), "insurances", insurances)
    found = changes(sample_clinic, edited)
    assert "services[ecg].private_price: 120 → 135.5" in found
    assert "insurances[amil]: removed" in found


def test_a_saved_price_is_what_the_receptionist_says(any_services: Services) -> None:
    services = any_services
    with TestClient(create_app(services.settings, services), client=LOCAL) as client:

        def ask() -> str:
            response = client.post(
                "/api/chat",
                json={"session_id": "price", "text": "quanto custa o eletrocardiograma?"},
            )
            return str(response.json()["reply"])

        assert "120" in ask()
        clinic = with_section(services.clinic(), "services", _priced(services.clinic(), "ecg", 145))
        staff = StaffAccounts(
            services.engine,
            services.clock,
            password_hasher(services.settings.staff_password_profile),
        )
        author = staff.add("admin@clinic.test", "a long enough password", StaffRole.admin).id
        saved = save_version(services.engine, clinic, source="console", author_id=author)
        services.clinic.reload()  # the saving process answers with it at once
        assert services.clinic.version_id == saved.id
        answer = ask()
        assert "145" in answer and "120" not in answer
    history = versions(services.engine)
    assert history[0].author_id == author
    assert history[0].summary == "services[ecg].private_price: 120 → 145"
    assert history[1].summary is None  # the first version: nothing before it
    found = version(services.engine, history[1].id)
    assert found is not None and found[1].price("ecg") == Decimal("120.00")


def test_another_process_sees_the_new_version_after_its_check(any_services: Services) -> None:
    from voice_agent.services import ClinicHolder

    other = ClinicHolder(any_services.engine, None)  # another process's
    assert other().price("ecg") == Decimal("120.00")
    assert not other.refresh()  # nothing new
    clinic = with_section(other(), "services", _priced(other(), "ecg", 99))
    save_version(any_services.engine, clinic, source="console")
    assert other().price("ecg") == Decimal("120.00")  # held until its scheduler job checks
    asyncio.run(other.refresh_safely())
    assert other().price("ecg") == Decimal("99")


def test_the_cli_exports_and_lists_versions(tmp_path: Path, clock: FixedClock) -> None:
    settings = make_settings(f"sqlite:///{tmp_path / 'cli.db'}")
    runtime = CliRuntime(settings=settings, clock=clock)
    runner = CliRunner()
    exported = tmp_path / "clinic.yaml"
    result = runner.invoke(cli, ["clinic", "export", "--output", str(exported)], obj=runtime)
    assert result.exit_code == 0, result.output
    text = exported.read_text(encoding="utf-8").replace("price: 120", "price: 125")
    exported.write_text(text, encoding="utf-8")
    loaded = runner.invoke(cli, ["clinic", "load", str(exported)], obj=runtime)
    assert loaded.exit_code == 0, loaded.output
    listed = runner.invoke(cli, ["clinic", "versions"], obj=runtime)
    assert listed.exit_code == 0, listed.output
    assert "services[ecg].private_price: 120 → 125" in listed.output
    assert str(exported) in listed.output
    missing = runner.invoke(cli, ["clinic", "export", "--version", "999"], obj=runtime)
    assert missing.exit_code == 1 and "no clinic version 999" in missing.output
