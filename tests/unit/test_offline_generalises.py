"""The offline receptionist on phrasings it was not tuned on (issue 11): names, doctors by
first name, parts of the day, impossible requests, language with accented names."""

from __future__ import annotations

from datetime import date, time

import pytest

from tests.conftest import RUSSIAN_CLINIC_FILE
from voice_agent.clinic import Clinic, load_clinic_file
from voice_agent.conversation.language import detect_language, proper_names
from voice_agent.conversation.offline.feasibility import check
from voice_agent.conversation.offline.names import address, relative
from voice_agent.conversation.offline.nlu import (
    TimeWish,
    extract_name,
    name_correction,
    parse,
    unknown_doctor,
)
from voice_agent.settings import DEFAULT_CLINIC_FILE

TODAY = date(2026, 11, 23)  # a Monday


@pytest.fixture(scope="module")
def clinic() -> Clinic:
    return load_clinic_file(DEFAULT_CLINIC_FILE)


@pytest.fixture(scope="module")
def moscow() -> Clinic:
    return load_clinic_file(RUSSIAN_CLINIC_FILE)


@pytest.mark.parametrize(
    ("text", "language", "name"),
    [
        ("sou Bruno Dias", "pt-BR", "Bruno Dias"),
        ("Nome Tiago Rocha", "pt-BR", "Tiago Rocha"),
        ("Olá, aqui é a Rita Moreira, quero marcar clínico geral", "pt-BR", "Rita Moreira"),
        ("I'm Emma Brown", "en", "Emma Brown"),
        ("Name: Olivia Hayes", "en", "Olivia Hayes"),
        ("Петрова Анна", "ru", "Петрова Анна"),
        ("меня зовут Соколов Дмитрий Андреевич", "ru", "Соколов Дмитрий Андреевич"),
    ],
)
def test_names_from_how_patients_give_them(text: str, language: str, name: str) -> None:
    assert extract_name(text, language) == name


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("eu queria saber se vocês atendem amanhã", "pt-BR"),
        ("I was wondering if you are open tomorrow", "en"),
        ("я хотела узнать работаете ли вы в субботу", "ru"),
    ],
)
def test_a_sentence_is_no_name(text: str, language: str) -> None:
    assert extract_name(text, language) is None


def test_name_corrections() -> None:
    said = "desculpa, meu nome não é Carla Souza, é Carla Santos"
    assert name_correction(said, "pt-BR") == "Carla Santos"
    assert name_correction("my name is not Grace Miller, it's Grace Mills", "en") == "Grace Mills"
    assert name_correction("не Морозова, а Морозюк Елена Игоревна", "ru") == (
        "Морозюк Елена Игоревна"
    )
    assert name_correction("не в понедельник, а во вторник", "ru") is None


def test_russian_patients_are_addressed_by_first_name_and_patronymic() -> None:
    assert address("Кузнецова Ольга Викторовна", "ru") == "Ольга Викторовна"
    assert address("Петрова Анна", "ru") == "Анна"
    assert address("Иван Петров", "ru") == "Иван"
    assert address("Maria da Silva", "pt-BR") == "Maria"


def test_the_relative_a_booking_is_for() -> None:
    assert relative("pediatra para minha filha Sofia Costa", "pt-BR") == "Sofia Costa"
    assert relative("a pediatrician for my son Tommy Green", "en") == "Tommy Green"
    assert relative("хочу записать сына Мишу к неврологу", "ru") == "Миша"
    # The object of "записать сына / дочь" is in the accusative: his surname, not a feminine one.
    assert relative("хочу записать сына Зайцева Мишу к неврологу", "ru") == "Зайцев Миша"
    assert relative("записать дочь Зайцеву Аню", "ru") == "Зайцева Аня"
    assert relative("записать маму Ольгу Петровну к терапевту", "ru") == "Ольга Петровна"
    assert relative("quero marcar pediatra", "pt-BR") is None


@pytest.mark.parametrize(
    ("text", "language", "doctor"),
    [
        ("quero marcar com a Dra. Ana", "pt-BR", "dr-ana-souza"),
        ("o Dr. Carlos tem horário?", "pt-BR", "dr-carlos-lima"),
        ("quero com o Paulo na sexta", "pt-BR", "dr-paulo-ribeiro"),
        ("queria consulta com o doutor Roberto Tanaca", "pt-BR", "dr-roberto-tanaka"),
        ("I'd like to see Dr. Tanka", "en", "dr-roberto-tanaka"),
        ("is dr fernada available?", "en", "dra-fernanda-alves"),
        ("sou Ana Costa", "pt-BR", None),  # a patient's own first name is not a doctor
    ],
)
def test_doctors_by_first_name_title_and_typo(
    clinic: Clinic, text: str, language: str, doctor: str | None
) -> None:
    assert parse(text, language, clinic, TODAY).doctor_id == doctor


def test_russian_doctors_by_name_and_patronymic_in_any_case(moscow: Clinic) -> None:
    assert parse("хочу к Марии Петровне", "ru", moscow, TODAY).doctor_id == "ivanova"
    assert parse("время у Алексея Игоревича", "ru", moscow, TODAY).doctor_id == "smirnov"
    assert parse("хочу к доктору Смирнвоу", "ru", moscow, TODAY).doctor_id == "smirnov"


def test_an_unknown_doctor_is_named(clinic: Clinic, moscow: Clinic) -> None:
    assert unknown_doctor("quero consulta com o Dr. House", clinic) == "House"
    assert unknown_doctor("запишите к доктору Хаусу", moscow) == "Хаусу"
    assert unknown_doctor("quero com a Dra. Ana", clinic) is None
    assert unknown_doctor("I need a skin doctor", clinic) is None


def test_late_afternoon_is_the_last_two_hours_of_the_clinics_afternoon(
    clinic: Clinic, moscow: Clinic
) -> None:
    wish = parse("cardiologista na sexta no fim da tarde", "pt-BR", clinic, TODAY).wish
    assert wish.earliest == time(16, 0) and wish.periods == ["afternoon"]
    assert parse("late afternoon on Friday", "en", clinic, TODAY).wish.earliest == time(16, 0)
    wish = parse("во вторник ближе к вечеру", "ru", moscow, TODAY).wish
    assert wish.earliest == time(15, 0) and wish.periods == ["afternoon"]


def test_early_morning_is_before_ten(clinic: Clinic, moscow: Clinic) -> None:
    assert parse("amanhã no início da manhã", "pt-BR", clinic, TODAY).wish.latest == time(10, 0)
    assert parse("tomorrow, early morning", "en", clinic, TODAY).wish.latest == time(10, 0)
    assert parse("в среду с утра пораньше", "ru", moscow, TODAY).wish.latest == time(10, 0)


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("quinta às 3 da manhã", "pt-BR"),
        ("Thursday at 3 am", "en"),
        ("в среду в 3 часа ночи", "ru"),
    ],
)
def test_three_at_night_is_night(clinic: Clinic, text: str, language: str) -> None:
    found = parse(text, language, clinic, TODAY)
    assert found.night == time(3, 0)
    assert found.wish.earliest is None and found.clock is None


@pytest.mark.parametrize(
    ("text", "language", "hour"),
    [("às 3 da tarde", "pt-BR", 15), ("às 8 da noite", "pt-BR", 20), ("в 3 часа дня", "ru", 15)],
)
def test_an_hour_with_its_half_of_the_day(
    clinic: Clinic, text: str, language: str, hour: int
) -> None:
    assert parse(text, language, clinic, TODAY).wish.earliest == time(hour, 0)


def test_past_and_impossible_dates(clinic: Clinic) -> None:
    wish = parse("clínico no dia 10 de novembro", "pt-BR", clinic, TODAY).wish
    assert wish.past == [date(2026, 11, 10)] and not wish.dates
    assert parse("dia 31 de fevereiro", "pt-BR", clinic, TODAY).wish.invalid
    assert parse("February 31st", "en", clinic, TODAY).wish.invalid
    assert parse("5 de janeiro", "pt-BR", clinic, TODAY).wish.dates == [date(2027, 1, 5)]


def test_reasons_and_the_nearest_request_that_can_be_met(clinic: Clinic) -> None:
    sunday = check(clinic, TimeWish(weekdays=["sun"]), "derma-consulta", None, None, "pt-BR")
    assert [o.key for o in sunday.obstacles] == ["closed_on_day"]
    assert sunday.wish.weekdays == []
    christmas = check(
        clinic, TimeWish(dates=[date(2026, 12, 25)]), "clinico-consulta", None, None, "en"
    )
    assert christmas.obstacles[0].key == "closed_on_date"
    assert "Natal" in christmas.obstacles[0].fields["date"] and not christmas.wish.dates
    monday = check(
        clinic, TimeWish(weekdays=["mon"]), "cardio-consulta", "dr-carlos-lima", None, "en"
    )
    assert monday.obstacles[0].key == "doctor_not_on_day"
    assert "Tuesday" in monday.obstacles[0].fields["days"]
    amil = check(clinic, TimeWish(), "cardio-consulta", None, "amil", "pt-BR")
    assert amil.obstacles[0].key == "insurance_not_covering" and amil.insurance_id is None
    fine = check(clinic, TimeWish(weekdays=["tue"]), "cardio-consulta", None, "unimed", "pt-BR")
    assert fine.obstacles == [] and fine.insurance_id == "unimed"


def test_an_accented_insurer_does_not_make_english_portuguese(clinic: Clinic) -> None:
    names = proper_names(clinic)
    assert detect_language("I need a dermatologist with Bradesco Saúde", names) == "en"
    assert detect_language("with Bradesco Saúde please", names) == "en"
    assert detect_language("Bradesco Saúde", names) is None
    assert detect_language("ok", names) is None and detect_language("2", names) is None


def test_a_doctor_may_have_his_own_price_for_a_shared_service(clinic: Clinic) -> None:
    from decimal import Decimal

    from pydantic import ValidationError

    from voice_agent.tools.clinic_info import _answer

    data = clinic.model_dump()
    for doctor in data["doctors"]:
        if doctor["id"] == "dr-ana-souza":
            doctor["prices"] = {"cardio-consulta": "550.00"}
    senior = Clinic.model_validate(data)
    assert senior.price("cardio-consulta", None, "dr-ana-souza") == Decimal("550.00")
    assert senior.price("cardio-consulta", None, "dr-carlos-lima") == Decimal("450.00")
    assert senior.price("cardio-consulta", "unimed", "dr-ana-souza") == Decimal("0")
    answer = _answer(senior, "prices", "cardio-consulta", "pt-BR")
    assert answer["services"][0]["doctor_prices"] == {"Dra. Ana Souza": "R$ 550,00"}
    assert clinic.price("cardio-consulta", None, "dr-ana-souza") == Decimal("450.00")
    for doctor in data["doctors"]:
        if doctor["id"] == "dr-carlos-lima":
            doctor["prices"] = {"derma-consulta": "100"}  # not one of his services
    with pytest.raises(ValidationError):
        Clinic.model_validate(data)


@pytest.mark.parametrize(
    ("text", "language", "today", "day"),
    [
        ("dia 2", "pt-BR", date(2026, 12, 3), date(2027, 1, 2)),  # next month, not next year
        ("the 2nd", "en", date(2026, 12, 3), date(2027, 1, 2)),
        ("2-го числа", "ru", date(2026, 12, 3), date(2027, 1, 2)),
        ("dia 3", "pt-BR", date(2026, 12, 3), date(2026, 12, 3)),
        ("dia 2", "pt-BR", date(2026, 11, 23), date(2026, 12, 2)),
        ("dia 31", "pt-BR", date(2026, 11, 3), date(2026, 12, 31)),  # November has no 31st
        ("dia 30", "pt-BR", date(2027, 1, 31), date(2027, 3, 30)),  # nor February a 30th
    ],
)
def test_a_day_of_the_month_is_the_next_one_to_come(
    clinic: Clinic, text: str, language: str, today: date, day: date
) -> None:
    assert parse(text, language, clinic, today).wish.dates == [day]


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("Maria Aparecida da Silva, nasci em 3 de abril de 1961", "pt-BR"),
        ("03/04/1961", "pt-BR"),
        ("I was born on April 3, 1961", "en"),
        ("я родилась 3 апреля 1961 года", "ru"),
    ],
)
def test_a_date_years_back_is_no_wish(clinic: Clinic, text: str, language: str) -> None:
    """A birth date said unprompted is not a day to book (it was read as April 3 of next
    year, its year dropped, or as "today is too soon")."""
    wish = parse(text, language, clinic, TODAY).wish
    assert wish.empty and not wish.past


def test_a_date_with_its_year(clinic: Clinic) -> None:
    assert parse("dia 20/11/2026", "pt-BR", clinic, TODAY).wish.past == [date(2026, 11, 20)]
    assert parse("dia 20/11/2026", "pt-BR", clinic, TODAY).wish.dates == []
    assert parse("15 de janeiro de 2027", "pt-BR", clinic, TODAY).wish.dates == [date(2027, 1, 15)]
    assert parse("December 10, 2026", "en", clinic, TODAY).wish.dates == [date(2026, 12, 10)]


@pytest.mark.parametrize(
    ("text", "language", "specialty"),
    [
        ("quanto custa o ortopedista?", "pt-BR", "ortopedia"),
        ("vcs tem ginecologista?", "pt-BR", "ginecologia"),
        ("do you have a dentist?", "en", "dentistry"),
        ("I need an eye doctor", "en", "ophthalmology"),
        ("можно к лору?", "ru", "ЛОРа"),
        ("cardiologista", "pt-BR", None),  # the clinic offers it
        ("dermatologist", "en", None),
        ("Лорд", "ru", None),
    ],
)
def test_a_specialty_the_clinic_does_not_offer(
    clinic: Clinic, text: str, language: str, specialty: str | None
) -> None:
    assert parse(text, language, clinic, TODAY).other_specialty == specialty


def test_a_specialty_is_judged_against_the_clinic_at_hand(clinic: Clinic, moscow: Clinic) -> None:
    assert parse("к неврологу", "ru", moscow, TODAY).other_specialty is None
    assert parse("к неврологу", "ru", clinic, TODAY).other_specialty == "невролога"
    assert parse("нужен кардиолог", "ru", moscow, TODAY).other_specialty == "кардиолога"


def test_a_name_does_not_start_with_a_particle() -> None:
    assert extract_name("e oftalmologista, tem?", "pt-BR") is None
    assert extract_name("Maria da Silva", "pt-BR") == "Maria da Silva"


def test_a_weekday_the_service_is_not_offered_on_is_not_a_closed_clinic(clinic: Clinic) -> None:
    """The dermatologist is off on Mondays; the clinic is open (it said "the clinic is closed
    on Monday")."""
    monday = check(clinic, TimeWish(weekdays=["mon"]), "derma-consulta", None, None, "en")
    assert [(o.key, o.fields["days"]) for o in monday.obstacles] == [
        ("service_not_on_day", "Tuesday, Thursday, Friday")
    ]
    assert monday.wish.weekdays == []
    sunday = check(clinic, TimeWish(weekdays=["sun"]), "derma-consulta", None, None, "en")
    assert [o.key for o in sunday.obstacles] == ["closed_on_day"]


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("qual o horário de vocês?", "ask_hours"),  # was a booking request
        ("que horas vocês atendem?", "ask_hours"),
        ("qual o horário da clínica no sábado?", "ask_hours"),
        ("tem horário amanhã?", None),  # a slot, not the opening hours
    ],
)
def test_opening_hours_and_a_free_time(clinic: Clinic, text: str, question: str | None) -> None:
    assert parse(text, "pt-BR", clinic, TODAY).question == question


def test_sooner_than_an_offer() -> None:
    """ "Tem mais cedo?": the bookable days before the first offer (its days dropped), then its
    day before its time; "mais cedo na quinta": the same days, before that time."""
    wish = TimeWish(dates=[date(2026, 12, 10)], periods=["morning"])
    sooner = wish.before(date(2026, 12, 10), time(9, 0), date(2026, 12, 4))
    assert [w.to_args() for w in sooner] == [
        {"date_from": "2026-12-04", "date_to": "2026-12-09", "periods": ["morning"]},
        {"dates": ["2026-12-10"], "periods": ["morning"], "latest": "08:59"},
    ]
    thursdays = TimeWish(weekdays=["thu"]).before(
        date(2026, 12, 10), time(13, 0), date(2026, 12, 4), keep_days=True
    )
    assert [w.to_args() for w in thursdays] == [{"weekdays": ["thu"], "latest": "12:59"}]
    assert TimeWish().before(date(2026, 12, 4), time(0, 0), date(2026, 12, 4)) == []


@pytest.mark.parametrize(
    ("text", "language"),
    [("tem mais cedo?", "pt-BR"), ("а пораньше нет?", "ru"), ("anything sooner?", "en")],
)
def test_sooner_is_not_more(clinic: Clinic, text: str, language: str) -> None:
    u = parse(text, language, clinic, TODAY, expecting_choice=True)
    assert u.has("earlier") and not u.has("more")


@pytest.mark.parametrize(
    ("text", "language", "name"),
    [
        ("Hi, I'm looking for a dermatologist next week", "en", None),  # was "Looking For A…"
        ("hello, this is urgent, I need a pediatrician", "en", None),  # was "Urgent"
        ("it's for my son, he needs a pediatrician", "en", None),  # was "For My Son"
        ("eu sou paciente de vocês", "pt-BR", None),
        ("Hi, I'm Kate Miller", "en", "Kate Miller"),
        ("i'm john smith", "en", "John Smith"),
        ("I'm John", "en", "John"),
        ("aqui é a Joana", "pt-BR", "Joana"),
        ("my number is 11 98765-4321 and my name is Ana Lima", "en", "Ana Lima"),
        ("meu celular é 11 98765-4321 e meu nome é Ana Lima", "pt-BR", "Ana Lima"),
        ("oi sou a Beatriz Lima, quero marcar dermatologia", "pt-BR", "Beatriz Lima"),
        ("здравствуйте меня зовут Анна Петрова", "ru", "Анна Петрова"),
        ("oi tudo bem", "pt-BR", None),
    ],
)
def test_a_name_after_an_ordinary_sentence_start(
    text: str, language: str, name: str | None
) -> None:
    assert extract_name(text, language, prefixed_only=True) == name


@pytest.mark.parametrize(
    ("text", "language", "name", "doctor"),
    [
        ("Смирнова Анна, запишите к терапевту на среду", "ru", "Смирнова Анна", None),
        ("Maria da Silva, 11 98765-4014, quero dermatologia", "pt-BR", "Maria da Silva", None),
        ("Carla Souza, quero cardiologia", "pt-BR", "Carla Souza", None),  # not Dra. Ana Souza
        ("Ана Соуза, пожалуйста", "ru", None, "dr-ana-souza"),  # the doctor, not the caller
        ("Bom Dia, quero marcar", "pt-BR", None, None),
        ("Bradesco Saúde, vocês aceitam?", "pt-BR", None, None),
        ("Dra. Ana, tem horário?", "pt-BR", None, "dr-ana-souza"),
        ("Hospital Vila Mariana, qual o endereço?", "pt-BR", None, None),
        ("Vila Mariana, tem estacionamento?", "pt-BR", None, None),  # in the clinic's address
    ],
)  # fmt: skip
def test_a_name_said_first_before_a_comma(
    clinic: Clinic, text: str, language: str, name: str | None, doctor: str | None
) -> None:
    u = parse(text, language, clinic, TODAY)
    assert (u.name, u.doctor_id) == (name, doctor)
