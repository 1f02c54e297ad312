"""The red-flag detector as a pure function: the issue's examples, inflections, typos, missing
accents, transliteration, third persons, and what is deliberately not an emergency."""

from __future__ import annotations

import pytest

from voice_agent.safety import RedFlagDetector, detect_red_flag
from voice_agent.safety.normalize import Speller, fold, to_cyrillic


@pytest.fixture(scope="module")
def detector() -> RedFlagDetector:
    return RedFlagDetector()


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("ребёнок не дышит", "breathing"),
        ("não consigo respirar", "breathing"),
        ("meu filho está convulsionando", "seizure"),
        ("sangramento muito forte", "bleeding"),
        ("quero me matar", "suicide"),
        ("хочу покончить с собой", "suicide"),
        ("my dad collapsed and isn't breathing", "breathing"),
        ("my throat is swelling", "anaphylaxis"),
    ],
)
def test_the_issues_examples_are_all_caught(
    detector: RedFlagDetector, text: str, category: str
) -> None:
    flag = detector.detect(text)
    assert flag is not None and flag.category == category


@pytest.mark.parametrize(
    "text",
    [
        "NAO CONSIGO RESPIRAR",  # shouting, no accents
        "ребенок не дышит",  # е for ё
        "у сына припадок",  # "a fit" alone is a seizure
        "tive dor no peito mês passado e agora voltou",  # past, then back now
        "had chest pain last week and now it's back",
        "a dor no peito não passou e estou suando frio",  # not gone: still a red flag
        "дочка не дышала минуту, сейчас синяя",  # another person, another tense
        "мамочка задыхалась",
        "rebenok ne dyshit",  # transliterated Russian
        "mama poteryala soznanie",
        "minha filha nao ta respirando",  # third person, slang
        "ela não respira!!!",
        "i cant breath",  # typo: breath
        "im having a hart attack",  # typo: hart
        "meu filho ta convulsionano",  # speech-to-text drops a letter
        "у сына судароги",  # typo in Russian
        "my daughter is seizing",
        "my grandma fainted and isn't responding",
        "acho que meu marido está enfartando",  # the common spelling
        "сильно кровит",
        "бабушке плохо, она упала и не встаёт",
        "I took 20 pills",
        "dochka ne dyshit",
        "u papy infarkt",
    ],
)
def test_inflections_typos_transliteration_and_third_persons(
    detector: RedFlagDetector, text: str
) -> None:
    assert detector.detect(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "uma dor no peito que já passou",
        "a dor no peito sumiu, mas quero fazer exames",  # the symptom named, then gone
        # "now" that says it is over does not bring a past symptom back:
        "chest pain I had last month, it's gone now",
        "месяц назад была боль в груди, сейчас всё нормально",
        "tive dor no peito mês passado, agora estou bem",
        "quero marcar com o cardiologista por causa de uma dor no peito que já passou",
        "my chest X-ray results",
        "давление у папы в норме",
        "dor nas costas há uma semana",
        "my dad had a stroke last year, I'd like a neurology appointment",
        "боли в груди нет, просто хочу проверить сердце",
        "minha sogra vai me matar se eu esquecer a consulta",
        "this traffic is killing me",
        "nariz entupido, não consigo respirar pelo nariz",
        "meu pai toma remédio para convulsão",
        "ele desmaiou de sono kkkk",
        "I passed out on the couch lol",
        "беременна, хочу встать на учёт",
        "my mother is a heart patient, book a follow up",
        "",
        "   ",
        "1",
    ],
)
def test_past_resolved_negated_and_idioms_are_not_emergencies(
    detector: RedFlagDetector, text: str
) -> None:
    assert detector.detect(text) is None


def test_a_symptom_that_is_back_now_is_an_emergency_again(detector: RedFlagDetector) -> None:
    assert detector.detect("a dor no peito tinha passado mas agora voltou forte") is not None
    assert detector.detect("tive um AVC ano passado. Agora a boca ficou torta") is not None


def test_suicidal_thoughts_are_never_excused_by_the_past(detector: RedFlagDetector) -> None:
    flag = detector.detect("ano passado eu já pensava nisso, e hoje quero me matar")
    assert flag is not None and flag.crisis


def test_the_most_specific_category_wins(detector: RedFlagDetector) -> None:
    pregnant = detector.detect("estou grávida de 7 meses e estou sangrando muito")
    assert pregnant is not None and pregnant.category == "pregnancy"
    pills = detector.detect("vou tomar todos os remédios pra acabar com a minha vida")
    assert pills is not None and pills.category == "suicide"


def test_a_long_message_is_judged_sentence_by_sentence(detector: RedFlagDetector) -> None:
    text = "Bom dia. Quero marcar pediatra para a semana que vem. " * 30
    assert len(text) > 1500 and detector.detect(text) is None
    flag = detector.detect(text + "O bebê engasgou e está roxo!")
    assert flag is not None and flag.category == "breathing"
    # A past sentence does not excuse a present one.
    assert detector.detect("Ele teve um infarto há 5 anos. Agora está com dor no peito.")


def test_normalisation_helpers() -> None:
    assert fold("Não CONSIGO, respirar!") == "nao consigo respirar"
    assert fold("Ребёнок не дышит") == "ребенок не дишит"
    assert fold("can't") == "cant"
    assert to_cyrillic("rebenok ne dyshit") == "ребенок не дишит"
    assert to_cyrillic("hochu pokonchit s soboj") == "хочу покончит с собои"
    speller = Speller(["respirar", "peito", "bebe"])
    assert speller.correct("respirra") == "respirar"
    assert speller.correct("bebeu") == "bebeu"  # an inflection stays itself
    assert speller.correct("feito") == "feito"  # another first letter: a real word
    assert detect_red_flag("не могу дышать") is not None
