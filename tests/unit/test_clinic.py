"""Clinic files: the samples load; invalid files are refused with file, field path and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.conftest import RUSSIAN_CLINIC_FILE
from voice_agent.clinic import ClinicFileError, load_clinic_file, parse_clinic
from voice_agent.clinic.lookup import find_doctor, find_insurance, find_service
from voice_agent.settings import DEFAULT_CLINIC_FILE


def sample_data() -> dict:
    return yaml.safe_load(DEFAULT_CLINIC_FILE.read_text(encoding="utf-8"))


def test_both_samples_load() -> None:
    brazil = load_clinic_file(DEFAULT_CLINIC_FILE)
    russia = load_clinic_file(RUSSIAN_CLINIC_FILE)
    assert brazil.tz.key == "America/Sao_Paulo" and len(brazil.doctors) >= 5
    assert len(brazil.hospitals) == 2 and len(brazil.insurances) >= 4
    assert russia.country == "RU" and russia.default_language == "ru"
    assert brazil.price("cardio-consulta") == 450
    assert brazil.price("cardio-consulta", "unimed") == 0
    assert brazil.accepts("sulamerica", "dr-ana-souza", "cardio-consulta")
    assert not brazil.accepts("sulamerica", "dr-carlos-lima", "cardio-consulta")
    assert not brazil.accepts("amil", "dr-ana-souza", "cardio-consulta")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.update(timezone="Mars/Olympus"), "timezone: unknown IANA timezone"),
        (lambda d: d["doctors"][0].update(services=["nope"]), "service 'nope' is not defined"),
        (lambda d: d["services"][0].update(duration_minutes=-5), "services.0.duration_minutes"),
        (lambda d: d["services"][0].update(duration_minutes=17), "multiple of 5"),
        (
            lambda d: d["doctors"][0]["working_hours"]["mon"][0].update(end="07:00"),
            "doctors.0.working_hours.mon.0",
        ),
        (lambda d: d.update(staff_phone="12"), "staff_phone '12' is not a valid phone number"),
        (lambda d: d.update(languages=["pt-BR", "fr"]), "language 'fr'"),
        (lambda d: d["doctors"].append(dict(d["doctors"][0])), "id 'dr-ana-souza' appears twice"),
        (lambda d: d.pop("services"), "services: Field required"),
        (lambda d: d.update(surprise=1), "surprise: Extra inputs are not permitted"),
    ],
)
def test_invalid_files_name_the_field_and_reason(change, expected: str, tmp_path: Path) -> None:
    data = sample_data()
    change(data)
    path = tmp_path / "clinic.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ClinicFileError) as caught:
        load_clinic_file(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and expected in message, message


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ClinicFileError, match="not valid YAML"):
        parse_clinic("name: [unclosed", "x.yaml")
    with pytest.raises(ClinicFileError, match="cannot read"):
        load_clinic_file(tmp_path / "absent.yaml")
    with pytest.raises(ClinicFileError, match="top level must be a mapping"):
        parse_clinic("- a\n- b\n", "x.yaml")


def test_lookups_understand_names_synonyms_and_languages(sample_clinic) -> None:
    assert find_service(sample_clinic, "Cardiologista").id == "cardio-consulta"
    assert find_service(sample_clinic, "кардиолог").id == "cardio-consulta"
    assert find_service(sample_clinic, "heart ultrasound").id == "ecocardiograma"
    assert find_service(sample_clinic, "clinica geral").id == "clinico-consulta"
    assert find_service(sample_clinic, "dermatologia").id == "derma-consulta"
    assert find_service(sample_clinic, "ecologia") is None
    assert find_doctor(sample_clinic, "Dra. Ana").id == "dr-ana-souza"
    assert find_doctor(sample_clinic, "doutor tanaka").id == "dr-roberto-tanaka"
    assert find_doctor(sample_clinic, "Dr. Silva") is None
    assert find_insurance(sample_clinic, "sul america").id == "sulamerica"
    assert find_insurance(sample_clinic, "Hapvida") is None
