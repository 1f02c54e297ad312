"""Clinic sections as forms and back: an untouched form gives the same clinic, each field is
named where the model reports its error, items are added and removed, a day's hours read as
text."""

from __future__ import annotations

from decimal import Decimal

import pytest

from voice_agent.clinic import Clinic
from voice_agent.clinic.forms import SECTIONS, FormError, apply, build, read_day, say_day
from voice_agent.clinic.versions import ClinicEditError, document, validate

LANGUAGES = ["pt-BR", "en", "ru"]


def _posted(section: str, clinic: Clinic) -> dict[str, str]:
    form = build(section, document(clinic), LANGUAGES)
    return {f.name: f.value for item in form.items for f in item.fields}


@pytest.mark.parametrize("section", SECTIONS)
def test_an_untouched_form_gives_the_same_clinic(sample_clinic: Clinic, section: str) -> None:
    applied = apply(section, document(sample_clinic), _posted(section, sample_clinic))
    assert validate(applied.doc) == sample_clinic


def test_a_price_and_a_coverage_change(sample_clinic: Clinic) -> None:
    posted = _posted("services", sample_clinic)
    assert posted["services.1.private_price"] == "120"
    posted["services.1.private_price"] = "135.50"
    clinic = validate(apply("services", document(sample_clinic), posted).doc)
    assert clinic.price("ecg") == Decimal("135.50")

    grid = _posted("coverage", clinic)
    assert grid["services.1.insurance_prices.sulamerica"] == "25"
    assert grid["services.1.insurance_prices.amil"] == ""  # not covered
    grid["services.1.insurance_prices.sulamerica"] = ""  # SulAmérica no longer covers the ECG
    grid["services.1.insurance_prices.amil"] = "15"
    clinic = validate(apply("coverage", document(clinic), grid).doc)
    assert not clinic.accepts("sulamerica", "dr-ana-souza", "ecg")
    assert clinic.price("ecg", "amil") == Decimal("15")


def test_errors_are_found_beside_their_field(sample_clinic: Clinic) -> None:
    posted = _posted("holidays", sample_clinic)
    posted["remove.closures.0"] = "1"  # the first holiday goes: positions shift
    posted["closures.2.end"] = "2026-12-01"  # before its start
    posted["closures.3.start"] = "not a date"
    applied = apply("holidays", document(sample_clinic), posted)
    with pytest.raises(ClinicEditError) as refused:
        validate(applied.doc)
    fields = {applied.field_for(path) for path in refused.value.fields}
    assert fields == {"closures.3.start"}
    assert refused.value.problems["closures.2.start"].type == "date_from_datetime_parsing"
    assert refused.value.general == []

    posted = _posted("hours", sample_clinic)
    posted["doctors.1.working_hours.tue"] = "09:00-18:07"
    applied = apply("hours", document(sample_clinic), posted)
    with pytest.raises(ClinicEditError) as off_grid:
        validate(applied.doc)
    [path] = off_grid.value.fields
    assert applied.field_for(path) == "doctors.1.working_hours.tue"


def test_a_new_holiday_and_a_removed_hospital_reference(sample_clinic: Clinic) -> None:
    posted = _posted("holidays", sample_clinic)
    posted |= {"closures.new.start": "2027-06-03", "closures.new.reason": "Corpus Christi"}
    clinic = validate(apply("holidays", document(sample_clinic), posted).doc)
    assert clinic.closures[-1].reason == "Corpus Christi"
    assert clinic.is_closed(clinic.closures[-1].start, "dr-ana-souza")

    posted = _posted("hospitals", sample_clinic)
    posted["remove.hospitals.0"] = "1"
    with pytest.raises(ClinicEditError) as refused:
        validate(apply("hospitals", document(sample_clinic), posted).doc)
    assert any("hosp-santa-cecilia" in problem for problem in refused.value.general)


def test_an_existing_id_cannot_be_changed(sample_clinic: Clinic) -> None:
    posted = _posted("insurances", sample_clinic)
    posted["insurances.0.id"] = "renamed"
    clinic = validate(apply("insurances", document(sample_clinic), posted).doc)
    assert clinic.insurances[0].id == sample_clinic.insurances[0].id


def test_a_day_of_working_hours_as_text() -> None:
    periods = [
        {"start": "08:00", "end": "17:00", "breaks": [{"start": "12:00", "end": "13:30"}]},
        {"start": "18:00", "end": "20:00", "hospital": "hosp-x"},
    ]
    said = say_day(periods)
    assert said == "08:00-17:00 (12:00-13:30); 18:00-20:00 @hosp-x"
    assert read_day(said) == periods
    assert read_day(" 8:00 - 12:00 ") == [{"start": "08:00", "end": "12:00"}]
    assert read_day("") == []
    with pytest.raises(ValueError):
        read_day("morning")


def test_an_unreadable_day_is_a_form_error(sample_clinic: Clinic) -> None:
    posted = _posted("hours", sample_clinic)
    posted["doctors.0.working_hours.mon"] = "all day"
    with pytest.raises(FormError) as refused:
        apply("hours", document(sample_clinic), posted)
    assert list(refused.value.fields) == ["doctors.0.working_hours.mon"]
