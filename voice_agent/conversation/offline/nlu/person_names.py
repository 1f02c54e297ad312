"""People's names in text: the patient's own name ("meu nome é Maria Silva", a correction), and
the rough spelling key doctors' names are matched by ("Силва" == "Silva")."""

from __future__ import annotations

import re
from functools import cache

from rapidfuzz.distance import OSA
from stop_words import get_stop_words

from voice_agent.clinic.lookup import fold
from voice_agent.conversation.offline.lexicon import LEXICONS
from voice_agent.conversation.offline.nlu.patterns import EMAIL, PHONE, rx, words_only

TITLES = {"dr", "dra", "doutor", "doutora", "doctor", "доктор", "врач", "dr.", "dra."}


def given_name_words(name: str) -> list[str]:
    """ "Dra. Ana Souza" → [ana]; "Иванова Мария Петровна" → [мария, петровна]."""
    words = [w for w in words_only(fold(name)).split() if w not in TITLES]
    if len(words) >= 3 and _PATRONYMIC.search(words[-1]):
        return words[1:3]
    return words[:1] if len(words) >= 2 else []


def surname_words(name: str) -> list[str]:
    """ "Dra. Ana Souza" → souza; "Иванова Мария Петровна" (surname first) → иванова."""
    words = [w for w in words_only(fold(name)).split() if w not in TITLES]
    if len(words) >= 3 and _PATRONYMIC.search(words[-1]):
        return words[:1]
    return [w for w in words[1:] if len(w) >= 4] or words


_PATRONYMIC = re.compile(r"(вна|вич|ична|ьич|ovna|evna|ovich|evich)$")
_TRANSLIT = str.maketrans(
    {
        "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ж": "zh", "з": "z",
        "и": "i", "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p",
        "р": "r", "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch",
        "ш": "sh", "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
    }
)  # fmt: skip
_RU_ENDINGS = frozenset(
    "a ia u iu e i oi ei om em im oiu eiu uiu ogo ego omu emu ikh am iam ami akh iakh ov ev".split()  # noqa: SIM905
)
"""Russian case endings of a name, transliterated as ``name_key`` spells them."""


def name_key(word: str) -> str:
    """A folded name word in one rough Latin spelling, so that "Силва" == "Silva" and
    "Соуза" == "Souza": Cyrillic transliterated, then c/k/q, z/s, y/i, w/v, ph/f, th/t, doubled
    letters and ж/j made alike."""
    key = fold(word).translate(_TRANSLIT)
    for old, new in (("zh", "j"), ("ph", "f"), ("th", "t"), ("ck", "k"), ("qu", "k")):
        key = key.replace(old, new)
    key = re.sub(r"c(?=[eiy])", "s", key).replace("c", "k").replace("w", "v").replace("x", "ks")
    key = key.replace("y", "i").replace("z", "s")
    return re.sub(r"(.)\1+", r"\1", key)


def same_name(said: str, name: str, inflected: bool) -> bool:
    """Whether a word (as ``name_key``) is this surname; a Cyrillic word may be inflected
    ("Силве", "Лимы", "Ивановой" for Silva, Lima, Иванова)."""
    if said == name:
        return True
    if inflected:
        stem = name[:-1] if name[-1:] in ("a", "e", "i", "o", "u") else name
        if len(stem) >= 3 and said.startswith(stem) and said[len(stem) :] in _RU_ENDINGS:
            return True
    # One typo (a letter missed, added, changed or two swapped) in a name of 5+ letters.
    if len(name) < 5 or abs(len(said) - len(name)) > 3:
        return False
    forms = [said]
    if inflected:
        forms += [said[:-k] for k in (1, 2, 3) if said[-k:] in _RU_ENDINGS]
    return any(OSA.distance(form, name, score_cutoff=1) <= 1 for form in forms)


def extract_name(text: str, language: str, *, prefixed_only: bool = False) -> str | None:
    """A person's name from "meu nome é Maria Silva" or a bare "Maria Silva"."""
    lex = LEXICONS.get(language, LEXICONS["en"])
    raw = " ".join(EMAIL.sub(" ", text).split()).strip(" .,!?;:")
    raw = " ".join(PHONE.sub(" ", raw).split()).strip(" .,!?;:")
    lowered = fold(raw)
    prefixed = weak = False
    for prefix in lex.name_prefixes:
        match = rx(rf"^(?:.*?(?:[,.!]|\b(?:and|e|и))\s*|{_GREETINGS}\s+)?{prefix}\s+").match(
            lowered
        )
        if match and (not prefixed_only or len(prefix) > 3):
            raw = raw[len(match.group(0)) :] if len(raw) >= len(match.group(0)) else raw
            prefixed, weak = True, not _NAMING.search(prefix)
            break
    if prefixed_only and not prefixed:
        return None
    raw = re.split(r"[,.;!?\n]| e meu| и мо| and my", raw)[0].strip()
    raw = _AFTER_NAME.split(raw)[0].strip()
    words = raw.split()
    if not 1 <= len(words) <= 6 or words[0].lower() in PARTICLES:
        return None  # "e oftalmologista, tem?": a name does not start with "e" or "da"
    if weak and not _reads_as_a_name(words, language):
        return None
    if not all(re.fullmatch(r"[^\W\d_]+(?:['-][^\W\d_]+)*\.?", w) for w in words):
        return None
    if max(len(w) for w in words) < 2 or any(rx(p).search(fold(raw)) for p in _NOT_NAMES):
        return None
    if any(fold(w) in _NOT_NAME_WORDS for w in words):
        return None
    return " ".join(_capitalize(w) for w in words)


_GREETINGS = (
    r"(?:oi|ola|hi|hello|hey|bom dia|boa tarde|boa noite|good (?:morning|afternoon|evening)"
    r"|привет|здравствуите|добрыи (?:день|вечер)|доброе утро)"
)
"""A greeting before the name with no comma between ("oi sou a Beatriz Lima")."""
_NAMING = re.compile(r"nome|name|chamo|зовут|им[яе]|фио")
"""Prefixes that say a name follows ("my name is"); the others also start ordinary sentences
("I'm looking for…", "this is urgent", "sou paciente", "это срочно")."""


def _reads_as_a_name(words: list[str], language: str) -> bool:
    """After "I'm", "this is", "sou", "это": no common word of the language (stop-words'
    lists: "for", "my", "de vocês", "для"; name particles aside), and a single word only as
    written with a capital ("I'm John", not "this is urgent")."""
    common = _stop_words(language)
    if any(fold(w) in common for w in words if w.lower() not in PARTICLES):
        return False
    return len(words) > 1 or words[0][:1].isupper()


@cache
def _stop_words(language: str) -> frozenset[str]:
    name = {"pt-BR": "portuguese", "ru": "russian"}.get(language, "english")
    return frozenset(fold(w) for w in get_stop_words(name))


_AFTER_NAME = re.compile(
    r"\s+(?:e\s+|и\s+|and\s+)?(?:quero|queria|gostaria|preciso|estou|tenho|gostaria|хочу|хотел\w*"
    r"|нужн\w*|мне|i'?d|i|want|need|would)\b",
    re.IGNORECASE,
)
_NOT_NAME_WORDS = frozenset(
    """eu voce voces queria quero saber se que atendem tem amanha hoje consulta marcar nao sim
    obrigado obrigada oi ola bom boa dia tarde noite como qual quando onde para por favor
    i you we was were wondering if are is open tomorrow today want need would like book the
    what when where how please thanks hello hi yes no appointment
    я мы вы хотела хотел хочу узнать ли работаете работает завтра сегодня нужен нужна нужно
    записаться запишите запись к в на по да нет спасибо здравствуите привет как где когда что
    """.split()  # noqa: SIM905
)
"""Words no name is made of: a sentence answered to "what is your name?" is not a name."""
PARTICLES = frozenset({"da", "de", "do", "das", "dos", "e", "van", "von", "del", "la"})
"""Lower-case words inside a name ("Maria da Silva", "Ludwig van Beethoven")."""
_NOT_NAMES = (
    r"\b(primeir|segund|terceir|ultim)[ao]\b",
    r"\b(first|second|third|last|one|option)\b",
    r"\b(перв|втор|трет|последн)\w*",
)


def _capitalize(word: str) -> str:
    if word.lower() in PARTICLES:
        return word.lower()
    return word if any(ch.isupper() for ch in word) else word[:1].upper() + word[1:]


_LEADING = re.compile(
    r"^\s*((?:[^\W\d_]+(?:['-][^\W\d_]+)*\.?\s+){1,3}[^\W\d_]+(?:['-][^\W\d_]+)*)\s*,"
)


def leading_name(text: str, language: str) -> str | None:
    """A name said first, before a comma, with no "my name is": "Смирнова Анна, запишите к
    терапевту", "Maria da Silva, quero marcar". Two to four words, each written with a capital
    (particles aside), none a common word of the language or a title ("Bom Dia," and "Dra.
    Ana," are not the caller)."""
    match = _LEADING.match(text)
    if match is None:
        return None
    words = match.group(1).split()
    if not _written_as_a_name(words):
        return None
    folded = [fold(w).rstrip(".") for w in words if w.lower() not in PARTICLES]
    if any(w in TITLES or w in _NOT_NAME_WORDS for w in folded):
        return None
    if not _reads_as_a_name(words, language):
        return None
    return " ".join(words)


def bare_name(text: str, language: str) -> str | None:
    """A name said alone, with no "my name is" ("John Smith", "Maria Silva, 11 98765-4000"),
    only as written with capitals: ``extract_name`` capitalises, so "meu telefone é fixo" would
    read as a name otherwise."""
    name = extract_name(text, language)
    if name is None or len(name) < 3:
        return None
    written = set(re.findall(r"[^\W\d_]+(?:['-][^\W\d_]+)*\.?", text))
    words = name.split()
    if not all(w in written for w in words if w.lower() not in PARTICLES):
        return None
    return name if _written_as_a_name(words) else None


def _written_as_a_name(words: list[str]) -> bool:
    """Two or more words, each (particles aside) with a capital as the caller wrote it."""
    named = [w for w in words if w.lower() not in PARTICLES]
    return len(named) >= 2 and all(w[:1].isupper() for w in named)


_CORRECTIONS = (
    re.compile(r"\bmeu nome n[aã]o [eé]\s+.+?[,;]?\s+(?:[eé]|mas|sim)\s+(.+)$", re.I),
    re.compile(r"\bmy name(?: is|'s) not\s+.+?[,;]?\s+(?:it'?s|it is|but|rather)\s+(.+)$", re.I),
    re.compile(r"(?:^|[\s,])не\s+[^\s,]+(?:\s+[^\s,]+)?\s*,?\s+а\s+(.+)$", re.I),
)


def name_correction(text: str, language: str) -> str | None:
    """The right name in "meu nome não é Carla Souza, é Carla Santos", "my name is not X, it's
    Y", "не Морозова, а Морозюк Елена Игоревна"; None when the message corrects nothing."""
    for pattern in _CORRECTIONS:
        match = pattern.search(text)
        if match:
            return extract_name(match.group(1), language)
    return None
