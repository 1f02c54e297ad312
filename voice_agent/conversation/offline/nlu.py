"""Understanding one message, without a model: intents, the clinic's services, doctors and
insurances, contact details, option choices, and date/time wishes relative to the clinic's today.

Pure functions over text and values: no I/O, no clock (``today`` is passed in), easy to test.
The date/time reader turns "na próxima terça à tarde", "не в понедельник", "next week, any
afternoon" into the arguments of the ``find_slots`` tool.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import date, time, timedelta
from functools import cache
from typing import Any

from rapidfuzz.distance import OSA

from voice_agent.clinic.lookup import fold
from voice_agent.clinic.model import Clinic, Weekday
from voice_agent.conversation.offline.lexicon import INTENTS, LEXICONS, Lexicon

WEEKDAY_IDS = tuple(w.value for w in Weekday)
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
PHONE = re.compile(r"(?<![\w@])\+?\d[\d\s().-]{7,}\d(?![\w@])")
CLOCK = re.compile(r"\b([01]?\d|2[0-3])(?::|h)([0-5]\d)\b")
_QUESTION_WORD = re.compile(r"\b[a-z\u0430-\u044f]{2,}\b")
"""Words of our scripts: "hmm 漢字 ???" is not a question we could route."""
LUNCH_END = time(13, 0)
""""After lunch" / "после обеда" / "depois do almoço": appointments from this time on."""


@dataclass
class TimeWish:
    """Date and time wishes, in the shape of ``find_slots``'s arguments."""

    dates: list[date] = field(default_factory=list)
    date_from: date | None = None
    date_to: date | None = None
    weekdays: list[str] = field(default_factory=list)
    exclude_weekdays: list[str] = field(default_factory=list)
    periods: list[str] = field(default_factory=list)
    earliest: time | None = None
    latest: time | None = None
    today_asked: bool = False
    past: list[date] = field(default_factory=list)
    """Dates asked for that are already gone ("10 de novembro" on November 23)."""
    invalid: str | None = None
    """A day that is no date ("31 de fevereiro"), as said."""

    @property
    def empty(self) -> bool:
        return not (
            self.dates
            or self.date_from
            or self.date_to
            or self.weekdays
            or self.exclude_weekdays
            or self.periods
            or self.earliest
            or self.latest
            or self.today_asked
        )

    def has_day(self) -> bool:
        return bool(self.dates or self.date_from or self.date_to or self.weekdays)

    def has_time(self) -> bool:
        return bool(self.periods or self.earliest or self.latest)

    def merged_over(self, old: TimeWish) -> TimeWish:
        """New wishes replace old ones aspect by aspect (days, times); exclusions accumulate."""
        merged = TimeWish(**{k: v for k, v in vars(old).items()})
        if self.has_day():
            merged.dates, merged.date_from, merged.date_to = self.dates, self.date_from, None
            merged.date_to, merged.weekdays = self.date_to, self.weekdays
        if self.has_time():
            merged.periods, merged.earliest, merged.latest = (
                self.periods,
                self.earliest,
                self.latest,
            )
        merged.exclude_weekdays = sorted(
            set(old.exclude_weekdays) | set(self.exclude_weekdays),
            key=WEEKDAY_IDS.index,
        )
        merged.weekdays = [w for w in merged.weekdays if w not in merged.exclude_weekdays]
        merged.today_asked = self.today_asked
        return merged

    def allows_day(self, day: date) -> bool:
        """Whether the day wishes (dates, range, weekdays, exclusions) allow ``day``."""
        if (self.dates and day not in self.dates) or (self.date_from and day < self.date_from):
            return False
        if self.date_to and day > self.date_to:
            return False
        weekday = WEEKDAY_IDS[day.weekday()]
        if self.weekdays and weekday not in self.weekdays:
            return False
        return weekday not in self.exclude_weekdays

    def after(self, day: date, at: time) -> tuple[TimeWish | None, TimeWish | None]:
        """These wishes moved past a slot offered on ``day`` at ``at``: the rest of that day,
        and the days after it. Either is None when the wishes leave nothing there.

        ``find_slots`` filters days and clock times separately, so "after Tuesday 10:00" takes
        two searches: Tuesday from 10:01, then from Wednesday on.
        """
        rest: TimeWish | None = None
        if self.allows_day(day) and at < time(23, 59):
            start = time(at.hour, at.minute + 1) if at.minute < 59 else time(at.hour + 1, 0)
            earliest = max(self.earliest or start, start)
            if self.latest is None or earliest < self.latest:
                rest = replace(
                    self,
                    dates=[day],
                    date_from=None,
                    date_to=None,
                    weekdays=[],
                    earliest=earliest,
                    today_asked=False,
                )
        following = day + timedelta(days=1)
        later = replace(
            self,
            dates=[d for d in self.dates if d >= following],
            date_from=max(self.date_from or following, following),
            today_asked=False,
        )
        left = any(later.allows_day(d) for d in later.dates) if self.dates else True
        if not left or (self.date_to and self.date_to < following):
            return rest, None
        return rest, later

    def to_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if self.dates:
            args["dates"] = [d.isoformat() for d in self.dates]
        if self.date_from:
            args["date_from"] = self.date_from.isoformat()
        if self.date_to:
            args["date_to"] = self.date_to.isoformat()
        if self.weekdays:
            args["weekdays"] = list(self.weekdays)
        if self.exclude_weekdays:
            args["exclude_weekdays"] = list(self.exclude_weekdays)
        if self.periods:
            args["periods"] = list(self.periods)
        if self.earliest:
            args["earliest"] = self.earliest.strftime("%H:%M")
        if self.latest:
            args["latest"] = self.latest.strftime("%H:%M")
        return args

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> TimeWish:
        return cls(
            dates=[date.fromisoformat(d) for d in args.get("dates", [])],
            date_from=date.fromisoformat(args["date_from"]) if args.get("date_from") else None,
            date_to=date.fromisoformat(args["date_to"]) if args.get("date_to") else None,
            weekdays=list(args.get("weekdays", [])),
            exclude_weekdays=list(args.get("exclude_weekdays", [])),
            periods=list(args.get("periods", [])),
            earliest=time.fromisoformat(args["earliest"]) if args.get("earliest") else None,
            latest=time.fromisoformat(args["latest"]) if args.get("latest") else None,
        )


_SMALL_TALK = frozenset({"greeting", "thanks", "yes", "no"})


@dataclass
class Understanding:
    intents: set[str] = field(default_factory=set)
    service_id: str | None = None
    doctor_id: str | None = None
    insurance_id: str | None = None
    private: bool = False
    email: str | None = None
    phone: str | None = None
    name: str | None = None
    wish: TimeWish = field(default_factory=TimeWish)
    option: int | None = None
    """1-based option, or -1 for the last one."""
    clock: time | None = None
    """A clock time said alone ("the 10:30 one"), to match an offer."""
    weekday_mentions: list[str] = field(default_factory=list)
    night: time | None = None
    """A night hour asked for ("3 da manhã"), when the clinic is closed."""
    asks: bool = False
    """Phrased as a question ("…?", "do you…", "есть ли…", "vocês têm…")."""

    def has(self, *intents: str) -> bool:
        return any(i in self.intents for i in intents)

    @property
    def unknown_question(self) -> bool:
        """A question about nothing the receptionist knows or does ("do you have parking?")."""
        if not self.asks or self.question is not None:
            return False
        if self.intents - _SMALL_TALK:
            return False
        entities = (self.service_id, self.doctor_id, self.insurance_id, self.email, self.phone)
        return not any(entities) and self.option is None and self.clock is None and self.wish.empty

    @property
    def question(self) -> str | None:
        for intent in INTENTS:
            if intent.startswith("ask_") and intent in self.intents:
                return intent
        return None


def _strip_marks(pattern: str) -> str:
    decomposed = unicodedata.normalize("NFKD", pattern.replace("ё", "е"))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@cache
def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(_strip_marks(pattern))


def normalize(text: str) -> str:
    """Folded text with emoji and symbols turned to spaces, so patterns see words only."""
    cleaned = "".join(
        ch if unicodedata.category(ch)[0] in "LNZ" or ch in "@.:+-'/,?!_" else " " for ch in text
    )
    return fold(cleaned)


def parse(
    text: str,
    language: str,
    clinic: Clinic,
    today: date,
    *,
    expecting_choice: bool = False,
) -> Understanding:
    """Everything the offline receptionist can read in one message."""
    lex = LEXICONS.get(language, LEXICONS["en"])
    folded = normalize(text)
    found = Understanding()
    email = EMAIL.search(text)
    if email:
        found.email = email.group(0).strip(".")
    without_email = EMAIL.sub(" ", folded)
    phone = PHONE.search(without_email)
    if phone and sum(ch.isdigit() for ch in phone.group(0)) >= 8:
        found.phone = phone.group(0).strip()
        without_email = without_email.replace(phone.group(0), " ")
    for intent in INTENTS:
        if any(_rx(p).search(without_email) for p in lex.intents.get(intent, ())):
            found.intents.add(intent)
    _refine_intents(found, without_email, lex)
    found.service_id = _find_service(clinic, _with_aliases(without_email, lex))
    found.name = extract_name(text, language, prefixed_only=True)
    found.doctor_id = _find_doctor(clinic, _without_name(without_email, found.name))
    found.insurance_id = _find_insurance(clinic, without_email)
    found.private = bool(_rx(lex.private).search(without_email))
    found.asks = bool(_rx(lex.question).search(without_email)) or (
        text.rstrip().endswith("?") and len(_QUESTION_WORD.findall(without_email)) >= 2
    )
    _resolve_questions(found)
    if found.asks and found.question is None and found.insurance_id and found.service_id:
        # "а по ОМС к неврологу можно?": when the plan does not cover it, that is the answer.
        doctors = clinic.doctors_for(found.service_id)
        if not any(clinic.accepts(found.insurance_id, d.id, found.service_id) for d in doctors):
            found.intents.add("ask_insurances")
    rest = without_email
    if expecting_choice:
        found.option, _ = _find_option(_without_dates(rest, lex), lex)
        if found.option is not None:
            _, rest = _find_option(rest, lex)
    found.wish, found.weekday_mentions, found.clock = parse_when(rest, language, today)
    _parts_of_day(found, rest, language, clinic)
    return found


_LATE_AFTERNOON = {
    "pt-BR": r"\b(fim|final|finalzinho|finzinho) da tarde\b|\btardinha\b",
    "en": r"\blate (in the )?afternoon\b|\bend of the afternoon\b|\bend of the day\b",
    "ru": r"\bближе к вечеру\b|\bпод вечер\b|\bв конце (рабочего )?дня\b",
}
_EARLY_MORNING = {
    "pt-BR": r"\b(inicio|comeco) da manha\b|\bmanhazinha\b|\bbem cedo\b|\bcedinho\b",
    "en": r"\bearly (in the )?morning\b|\bfirst thing\b",
    "ru": r"\bс утра пораньше\b|\bрано утром\b|\bпораньше утром\b|\bс самого утра\b",
}
_NIGHT_HOUR = {
    "pt-BR": r"\b(\d{1,2})\s*(?:h|horas?)?\s+da (?:manha|madrugada|noite)\b",
    "en": r"\b(\d{1,2})\s*(?:am|a\.m\.|o'?clock at night|at night|in the night)\b",
    "ru": r"\b(\d{1,2})\s*(?:ч|час\w*)?\s+(?:ночи|утра)\b",
}
EARLY_MORNING_END = time(10, 0)
""""Início da manhã" / "early morning" / "с утра пораньше": appointments before 10:00."""
LATE_AFTERNOON_HOURS = 2
""""Fim da tarde" / "late afternoon" / "ближе к вечеру": the last two hours of the clinic's
afternoon period (16:00-18:00 for an afternoon of 12:00-18:00)."""


def _parts_of_day(found: Understanding, text: str, language: str, clinic: Clinic) -> None:
    """Early morning, late afternoon, and a night hour ("3 da manhã", "3 am", "3 часа ночи"),
    which the clock reader alone would take for 15:00 or search for at 03:00."""
    wish = found.wish
    periods = clinic.periods_by_id
    if (p := _LATE_AFTERNOON.get(language)) and _rx(p).search(text) and "afternoon" in periods:
        end = periods["afternoon"].end
        wish.periods = ["afternoon"]
        wish.earliest = time(max(end.hour - LATE_AFTERNOON_HOURS, 0), end.minute)
        wish.latest, found.clock = None, None
    elif (p := _EARLY_MORNING.get(language)) and _rx(p).search(text):
        wish.periods = ["morning"]
        wish.latest, wish.earliest, found.clock = EARLY_MORNING_END, None, None
    if (p := _NIGHT_HOUR.get(language)) and (match := _rx(p).search(text)):
        hour = int(match.group(1))
        opens = _opening(clinic)
        if hour < 24 and time(hour % 24, 0) < opens:
            found.night = time(hour, 0)
            wish.periods = ["morning"]
            wish.earliest, wish.latest, found.clock = None, None, None


def _opening(clinic: Clinic) -> time:
    """When the earliest doctor starts on any day."""
    starts = [
        interval.start
        for doctor in clinic.doctors
        for intervals in doctor.working_hours.values()
        for interval in intervals
    ]
    return min(starts, default=time(8, 0))


_WARM_UP = (
    "Olá, quero marcar uma consulta amanhã às 10h30, não na segunda, depois das 15h, dia 3",
    "primeira opção, 25 de novembro, próxima terça à tarde, semana que vem, daqui a 3 dias",
    "Здравствуйте, запишите меня на завтра в 10:30, не в понедельник, после 15, 25 ноября",
    "первый вариант, на следующей неделе вечером, через 3 дня, 5-го числа",
    "Hi, I'd like to book tomorrow at 10am, not on Monday, after 3pm, December 1st",
    "the first one, next Tuesday afternoon, next week, in 3 days, the 5th",
)


def warm_up(clinic: Clinic) -> None:
    """Compile the patterns and build the clinic index once (a first message would pay ~0.1 s)."""
    for language, lex in LEXICONS.items():
        for patterns in lex.intents.values():
            for pattern in patterns:
                _rx(pattern)
        for text in _WARM_UP:
            parse(text, language, clinic, date(2026, 1, 5), expecting_choice=True)
            extract_name(text, language)


def _refine_intents(found: Understanding, text: str, lex: Lexicon) -> None:
    intents = found.intents
    if "book_weak" in intents:
        intents.discard("book_weak")
        # "quanto custa a consulta?" asks a price; "quero uma consulta" asks to book.
        if not any(i.startswith("ask_") for i in intents):
            intents.add("book")
    if "cancel" in intents and "reschedule" in intents:
        intents.discard("cancel")
    if intents & {"cancel", "reschedule", "list", "confirm_attendance"}:
        intents.discard("book")
    if intents & {"confirm_attendance", "cancel", "reschedule"}:
        # "pode cancelar" is a yes only to a cancellation read-back: the dialogue decides.
        intents.discard("yes")
    if "no" in intents and "yes" in intents:
        # "não, pode ser na quinta" / "нет, давайте в четверг": the first word decides.
        first = text.split()[0] if text.split() else ""
        yes_first = any(_rx(p).match(first) for p in lex.intents["yes"][:1])
        intents.discard("no" if yes_first else "yes")
    if "reject" in intents and "yes" in intents:
        intents.discard("yes")


def _with_aliases(text: str, lex: Lexicon) -> str:
    for pattern, word in lex.aliases:
        text = _rx(pattern).sub(word, text)
    return text


def _resolve_questions(found: Understanding) -> None:
    """What a question asks once its entities are known: "do you accept Amil?" asks about plans,
    "вы принимаете детей?" about a service; "do you accept cards?" is not ours to answer."""
    intents = found.intents
    if "ask_accepts" in intents:
        intents.discard("ask_accepts")
        if found.question is None:
            if found.insurance_id:
                intents.add("ask_insurances")
            elif found.service_id:
                intents.add("ask_services")
            else:
                found.asks = True
    if "ask_hours" in intents and found.doctor_id:
        # "does Dr. Lima work on Saturdays?": that doctor's days, not the clinic's hours.
        intents.discard("ask_hours")
        intents.add("ask_doctors")


def _without_dates(text: str, lex: Lexicon) -> str:
    """The text with explicit dates blanked, so "December 1st" is not "the first option"."""
    text = re.sub(r"\b\d{1,2}[/.]\d{1,2}([/.]\d{2,4})?\b", " ", text)
    text = _rx(lex.day_of_month).sub(" ", text)
    for month in lex.months:
        text = _rx(rf"\b\d{{1,2}}(st|nd|rd|th)?\s+(de\s+|of\s+)?{month}\w*").sub(" ", text)
        text = _rx(rf"\b{month}\w*\s+\d{{1,2}}(st|nd|rd|th)?\b").sub(" ", text)
    return text


def _find_option(text: str, lex: Lexicon) -> tuple[int | None, str]:
    """An option number or ordinal; returns it and the text without it."""
    numbered = re.search(
        r"(?:^|\b(?:opcao|option|вариант|numero|number|n|#|no)\.?\s*)([1-3])\b(?![:h.]\d)", text
    )
    if numbered and (numbered.group(0).strip() == numbered.group(1) or len(text.split()) <= 4):
        start, end = numbered.span()
        return int(numbered.group(1)), text[:start] + " " + text[end:]
    if re.fullmatch(r"\s*#?\s*([1-3])\s*[.!)]?\s*", text):
        return int(text.strip(" #.!)")), ""
    for number, pattern in lex.ordinals.items():
        match = _rx(pattern).search(text)
        if match is None:
            continue
        if lex.ordinal_prefix and not _rx(lex.ordinal_prefix).search(text[: match.start()]):
            continue
        return number, text[: match.start()] + " " + text[match.end() :]
    return None, text


def parse_when(text: str, language: str, today: date) -> tuple[TimeWish, list[str], time | None]:
    """Date/time wishes in folded ``text``, relative to ``today`` (the clinic's local date)."""
    lex = LEXICONS.get(language, LEXICONS["en"])
    wish = TimeWish()
    text = _rx(lex.period_blockers).sub(" ", text)
    mentions: list[str] = []
    # Days: relative words first, longest first, then masked so "amanhã" inside "depois de
    # amanhã" is not read twice.
    for pattern, offset in lex.relative_days:
        match = _rx(pattern).search(text)
        if match:
            if offset == 0:
                wish.today_asked = True
            else:
                wish.dates.append(today + timedelta(days=offset))
            text = text[: match.start()] + " " + text[match.end() :]
    if (match := _rx(lex.in_days).search(text)) is not None:
        wish.dates.append(today + timedelta(days=int(match.group(1))))
    monday = today - timedelta(days=today.weekday())
    if _rx(lex.next_week).search(text):
        wish.date_from = monday + timedelta(days=7)
        wish.date_to = monday + timedelta(days=13)
    elif _rx(lex.this_week).search(text):
        wish.date_from, wish.date_to = today, monday + timedelta(days=6)
    if _rx(lex.next_month).search(text):
        first = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
        wish.date_from = first
        wish.date_to = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    if _rx(lex.weekend).search(text):
        wish.weekdays += ["sat", "sun"]
    wish.dates += _explicit_dates(text, lex, today, wish)
    for weekday, pattern in lex.weekdays.items():
        for match in _rx(pattern).finditer(text):
            before = text[: match.start()]
            mentions.append(weekday)
            if _rx(lex.negation_before).search(before):
                wish.exclude_weekdays.append(weekday)
            elif _rx(lex.next_before).search(before):
                wish.dates.append(_next_weekday(today, WEEKDAY_IDS.index(weekday)))
            else:
                wish.weekdays.append(weekday)
    wish.weekdays = _unique(w for w in wish.weekdays if w not in wish.exclude_weekdays)
    wish.exclude_weekdays = _unique(wish.exclude_weekdays)
    wish.dates = sorted(set(wish.dates))
    # Periods, with negation ("não de manhã" → the other periods).
    excluded: set[str] = set()
    for period, pattern in lex.periods.items():
        for match in _rx(pattern).finditer(text):
            if _rx(lex.negation_before).search(text[: match.start()]):
                excluded.add(period)
            elif period not in wish.periods:
                wish.periods.append(period)
    if excluded and not wish.periods:
        wish.periods = [p for p in ("morning", "afternoon", "evening") if p not in excluded]
    clock = _clock_wishes(text, lex, language, wish)
    if wish.earliest is None and _rx(lex.after_lunch).search(text):
        wish.earliest = LUNCH_END
    return wish, _unique(mentions), clock


_HOUR = r"(\d{1,2})(?!\d)(?:(?::|h)(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?"
_AT_WORDS = {"as", "pelas", "at", "around", "в", "к"}


def _clock_wishes(text: str, lex: Lexicon, language: str, wish: TimeWish) -> time | None:
    """earliest/latest from "depois das 15h", "после 15", "before 11am"; returns a bare time
    ("às 10h30", "the 10:30 one", "в 10"), which also becomes a one-hour window."""
    suffix = rf"(?:\s*{lex.hour_suffix}\b)?"
    text = _rx(lex.noon).sub(" 12:00 ", text)
    text = re.sub(r"\b(\d{1,2})\s*(?:h|horas?)?\s+e meia\b", r"\1:30", text)
    text = re.sub(r"\bhalf past (\d{1,2})\b", r"\1:30", text)
    text = re.sub(r"\b(\d{1,2})\s*(?:h|horas?)?\s+e quinze\b", r"\1:15", text)
    for kind, marker in (("after", lex.after), ("before", lex.before)):
        for match in _rx(rf"\b{marker}\s+{_HOUR}{suffix}").finditer(text):
            value = _to_time(match)
            if value is None:
                continue
            if kind == "after":
                wish.earliest = value
            else:
                wish.latest = value
    if wish.earliest is not None or wish.latest is not None:
        return None
    bare: time | None = None
    at = _rx(rf"\b({lex.at})\s+{_HOUR}{suffix}")
    for match in at.finditer(text):
        tail = text[match.end() :].lstrip()
        if re.match(r"(de |of |числа|(?!дня|утра|ночи|вечера)\w+(ря|ля|та|ая|ня))", tail):
            continue  # "a 25 de novembro", "в 25 ноября": a date, not a time
        said = match.group(0)
        marked = bool(re.search(r"\d[:h]\d|am|pm|h\b|ч|час|o'?clock|hora", said))
        if marked or match.group(1) in _AT_WORDS:
            bare = _to_time(match)
            if bare is not None:
                break
    if bare is None and (match := CLOCK.search(text)) is not None:
        bare = time(int(match.group(1)), int(match.group(2)))
    if bare is None:
        match = _rx(rf"\b(\d{{1,2}})\s*{lex.hour_suffix}\b").search(text)
        if match and int(match.group(1)) < 24:
            bare = time(int(match.group(1)), 0)
    match = re.search(r"\b(\d{1,2})\s*(am|pm)\b", text) if bare is None else None
    if match is not None and 1 <= int(match.group(1)) <= 12:
        bare = time(int(match.group(1)) % 12 + (12 if match.group(2) == "pm" else 0), 0)
    afternoon = _AFTERNOON_HOUR.search(text)
    if afternoon and 1 <= int(afternoon.group(1)) <= 11:
        bare = time(int(afternoon.group(1)) + 12, bare.minute if bare else 0)
    if bare is not None:
        wish.earliest = bare
        wish.latest = time(bare.hour + 1, bare.minute) if bare.hour < 23 else None
    return bare


_AFTERNOON_HOUR = re.compile(
    r"\b(\d{1,2})(?::\d{2})?\s*(?:h|horas?|ч|час\w*)?\s+"
    r"(?:da tarde|da noite|дня|вечера|in the (?:afternoon|evening))\b"
)
"""An hour said with its half of the day: "8 da noite", "в 3 часа дня", "5 in the evening"."""


def _to_time(match: re.Match[str]) -> time | None:
    groups = [g for g in match.groups() if g is not None]
    numbers = [g for g in groups if g.isdigit()]
    if not numbers:
        return None
    hour = int(numbers[0])
    minute = int(numbers[1]) if len(numbers) > 1 and len(numbers[1]) == 2 else 0
    marks = [g.replace(".", "") for g in groups]
    meridiem = next((g for g in marks if g in ("am", "pm")), None)
    if hour > 23 or minute > 59:
        return None
    if meridiem:
        hour = hour % 12 + (12 if meridiem == "pm" else 0)
    elif 1 <= hour <= 7:
        # "depois das 3", "после 5", "after 4": clinics are closed at 3 am.
        hour += 12
    return time(hour, minute)


def _explicit_dates(text: str, lex: Lexicon, today: date, wish: TimeWish) -> list[date]:
    """Dates said in full; a day of the last two months goes to ``wish.past`` (not next year),
    and a day that no month has ("31 de fevereiro") to ``wish.invalid``."""
    found: list[date] = []

    def add(day: int, month: int, year: int | None, said: str) -> None:
        if not 1 <= month <= 12:
            return
        days_in_month = calendar.monthrange(year or 2028, month)[1]  # 2028: February 29 exists
        if not 1 <= day <= days_in_month:
            wish.invalid = said
            return
        this_year = _date(day, month, year or today.year, today)
        if year is None and this_year is not None and 0 < (today - this_year).days <= PAST_DAYS:
            wish.past.append(this_year)
            return
        value = _date(day, month, year, today)
        if value:
            found.append(value)

    for match in re.finditer(r"\b(\d{1,2})[/.](\d{1,2})(?:[/.](\d{2,4}))?\b", text):
        day, month = int(match.group(1)), int(match.group(2))
        year = int(match.group(3)) if match.group(3) else None
        if year is not None and year < 100:
            year += 2000
        if lex is LEXICONS["en"] and day <= 12 < month:
            day, month = month, day
        add(day, month, year, match.group(0))
    for index, month_pattern in enumerate(lex.months, 1):
        rx_after = _rx(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:de\s+|of\s+)?{month_pattern}\w*\b")
        rx_before = _rx(rf"\b{month_pattern}\w*\s+(\d{{1,2}})(?:st|nd|rd|th)?\b")
        for rx in (rx_after, rx_before):
            for match in rx.finditer(text):
                add(int(match.group(1)), index, None, match.group(0))
    months = "|".join(lex.months)
    for match in _rx(lex.day_of_month).finditer(text):
        if _rx(rf"^\s+(de\s+|of\s+)?({months})").match(text[match.end() :]):
            continue  # "dia 10 de novembro": read above with its month
        day = int(match.group(1))
        value = _date(day, today.month, None, today)
        if value is None or value < today:
            nxt = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
            value = _date(day, nxt.month, nxt.year, today)
        if value:
            found.append(value)
    return found


PAST_DAYS = 62
"""A date without a year up to two months back is a date gone, not one of next year."""


def _date(day: int, month: int, year: int | None, today: date) -> date | None:
    try:
        value = date(year or today.year, month, day)
    except ValueError:
        return None
    if year is None and value < today:
        try:
            value = date(today.year + 1, month, day)
        except ValueError:
            return None
    return value


def _next_weekday(today: date, weekday: int) -> date:
    days = (weekday - today.weekday()) % 7 or 7
    return today + timedelta(days=days)


def _unique(items: Any) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


# Clinic look-ups by whole words in free text ---------------------------------------------------


_CYRILLIC_ENDING = re.compile(r"[аяоеиыуюь]$")
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
_TITLES = {"dr", "dra", "doutor", "doutora", "doctor", "доктор", "врач", "dr.", "dra."}


@dataclass(frozen=True)
class _Phrase:
    """A clinic name or synonym as folded words; Russian ones also as stems ("кардиолог")."""

    text: str
    stems: tuple[str, ...] | None
    target: str


@dataclass(frozen=True)
class _ClinicIndex:
    services: tuple[_Phrase, ...]
    insurances: tuple[_Phrase, ...]
    doctors: tuple[tuple[str, frozenset[str], tuple[str, ...]], ...]
    """Per doctor: id, surname keys, given-name keys (first name, patronymic)."""


def _phrase(name: str, target: str) -> _Phrase:
    text = _words(fold(name))
    stems = None
    if _CYRILLIC.search(text):
        stems = tuple(_CYRILLIC_ENDING.sub("", w) if len(w) > 4 else w for w in text.split())
    return _Phrase(text, stems, target)


_INDEXES: dict[int, tuple[Clinic, _ClinicIndex]] = {}


def _index(clinic: Clinic) -> _ClinicIndex:
    """Folded look-up tables of a clinic, built once per clinic object (clinics are frozen)."""
    cached = _INDEXES.get(id(clinic))
    if cached is not None and cached[0] is clinic:
        return cached[1]
    services = tuple(
        _phrase(name, service.id)
        for service in clinic.services
        for name in (
            service.id,
            *service.names.values(),
            *(s for group in service.synonyms.values() for s in group),
        )
    )
    insurances = tuple(
        _phrase(name, insurance.id)
        for insurance in clinic.insurances
        for name in (insurance.name, *insurance.synonyms)
    )
    doctors = []
    for doctor in clinic.doctors:
        surnames = frozenset(name_key(w) for w in _surnames(doctor.name))
        given = tuple(name_key(w) for w in _given_names(doctor.name))
        doctors.append((doctor.id, surnames, given))
    index = _ClinicIndex(services, insurances, tuple(doctors))
    if len(_INDEXES) > 16:
        _INDEXES.clear()
    _INDEXES[id(clinic)] = (clinic, index)
    return index


def _contains(words: list[str], joined: str, phrase: _Phrase) -> bool:
    """Whole-word containment; Russian words also match inflected ("кардиологу", "коже")."""
    if not phrase.text:
        return False
    if f" {phrase.text} " in joined:
        return True
    if phrase.stems is None:
        return False
    stems = phrase.stems
    for start in range(len(words) - len(stems) + 1):
        pairs = zip(words[start : start + len(stems)], stems, strict=True)
        if all(w.startswith(stem) and len(w) - len(stem) <= 3 for w, stem in pairs):
            return True
    return False


def _words(text: str) -> str:
    return " ".join(re.findall(r"[^\W_]+(?:-[^\W_]+)*", text))


def _best(phrases: tuple[_Phrase, ...], text: str) -> str | None:
    words = _words(text).split()
    joined = f" {' '.join(words)} "
    best: tuple[int, str] | None = None
    for phrase in phrases:
        if (best is None or len(phrase.text) > best[0]) and _contains(words, joined, phrase):
            best = (len(phrase.text), phrase.target)
    return best[1] if best else None


def _find_service(clinic: Clinic, text: str) -> str | None:
    return _best(_index(clinic).services, text)


def _find_insurance(clinic: Clinic, text: str) -> str | None:
    return _best(_index(clinic).insurances, text)


def _without_name(folded: str, name: str | None) -> str:
    """The message without the patient's own name: "sou Camila Ribeiro, quero cardiologia" does
    not ask for Dr. Paulo Ribeiro."""
    for word in normalize(name).split() if name else ():
        folded = re.sub(rf"\b{re.escape(word)}\b", " ", folded)
    return folded


def _find_doctor(clinic: Clinic, text: str) -> str | None:
    """The one doctor the text names, in any script and (Russian) any case, with a typo:
    "Dr. Lima", "к доктору Лиме", "Ана Соуза", "Ivanova" for "Иванова", by surname; "Dra. Ana",
    "com o Paulo", "к Марии Петровне", by first name after a title or with the patronymic."""
    words = _words(text).split()
    said = [(name_key(w), bool(_CYRILLIC.search(w))) for w in words]
    matches = []
    for doctor_id, surnames, given in _index(clinic).doctors:
        if any(_same_name(key, name, inflected) for key, inflected in said for name in surnames):
            matches.append(doctor_id)
            continue
        for position, (key, inflected) in enumerate(said):
            if not given or not _same_name(key, given[0], inflected):
                continue
            before = words[position - 1] if position else ""
            after = said[position + 1] if position + 1 < len(said) else ("", False)
            with_patronymic = len(given) > 1 and _same_name(after[0], given[1], after[1])
            if before in _BEFORE_GIVEN_NAME or with_patronymic:
                matches.append(doctor_id)
                break
    if not matches:  # a patronymic alone is how Russians name a doctor too ("Алексей Игоревич")
        matches = [
            doctor_id
            for doctor_id, _, given in _index(clinic).doctors
            if len(given) > 1
            and any(_same_name(k, given[1], True) for k, inflected in said if inflected)
        ]
    unique = list(dict.fromkeys(matches))
    return unique[0] if len(unique) == 1 else None


_BEFORE_GIVEN_NAME = frozenset(
    "dr dra doutor doutora doctor o a com with доктор доктора доктору врач врачу".split()  # noqa: SIM905
)
_UNKNOWN_DOCTOR = re.compile(
    r"(?:\b(?i:dra?|doutora?|doctor|доктор[ау]?)\.?)\s+([A-ZÀ-ÖØ-ÞА-ЯЁ][^\W\d_]+)"
)


def unknown_doctor(text: str, clinic: Clinic) -> str | None:
    """A doctor's name the patient said ("Dr. House", "к доктору Хаусу") that is none of ours."""
    for match in _UNKNOWN_DOCTOR.finditer(text):
        word = match.group(1)
        if _find_doctor(clinic, normalize(match.group(0))) is None:
            return word
    return None


def _given_names(name: str) -> list[str]:
    """ "Dra. Ana Souza" → [ana]; "Иванова Мария Петровна" → [мария, петровна]."""
    words = [w for w in _words(fold(name)).split() if w not in _TITLES]
    if len(words) >= 3 and _PATRONYMIC.search(words[-1]):
        return words[1:3]
    return words[:1] if len(words) >= 2 else []


def _surnames(name: str) -> list[str]:
    """ "Dra. Ana Souza" → souza; "Иванова Мария Петровна" (surname first) → иванова."""
    words = [w for w in _words(fold(name)).split() if w not in _TITLES]
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


def _same_name(said: str, name: str, inflected: bool) -> bool:
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
    raw = PHONE.sub(" ", raw).strip(" .,!?;:")
    lowered = fold(raw)
    prefixed = False
    for prefix in lex.name_prefixes:
        match = _rx(rf"^(?:.*?[,.!]\s*)?{prefix}\s+").match(lowered)
        if match and (not prefixed_only or len(prefix) > 3):
            raw = raw[len(match.group(0)) :] if len(raw) >= len(match.group(0)) else raw
            prefixed = True
            break
    if prefixed_only and not prefixed:
        return None
    raw = re.split(r"[,.;!?\n]| e meu| и мо| and my", raw)[0].strip()
    raw = _AFTER_NAME.split(raw)[0].strip()
    words = raw.split()
    if not 1 <= len(words) <= 6:
        return None
    if not all(re.fullmatch(r"[^\W\d_]+(?:['-][^\W\d_]+)*\.?", w) for w in words):
        return None
    if max(len(w) for w in words) < 2 or any(_rx(p).search(fold(raw)) for p in _NOT_NAMES):
        return None
    if any(fold(w) in _NOT_NAME_WORDS for w in words):
        return None
    return " ".join(_capitalize(w) for w in words)


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
_PARTICLES = {"da", "de", "do", "das", "dos", "e", "van", "von", "del", "la"}
_NOT_NAMES = (
    r"\b(primeir|segund|terceir|ultim)[ao]\b",
    r"\b(first|second|third|last|one|option)\b",
    r"\b(перв|втор|трет|последн)\w*",
)


def _capitalize(word: str) -> str:
    if word.lower() in _PARTICLES:
        return word.lower()
    return word if any(ch.isupper() for ch in word) else word[:1].upper() + word[1:]


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


def affirms(text: str, language: str) -> bool:
    """Whether a message is an explicit yes (and not also a no), in any supported language.

    The OpenAI loop uses it as a lock in code: the model may pass ``confirmed_by_patient`` only
    when the patient's latest message really says yes.
    """
    folded = normalize(text)
    for lex in (LEXICONS.get(language, LEXICONS["en"]), *LEXICONS.values()):
        said_yes = any(_rx(p).search(folded) for p in lex.intents["yes"])
        said_no = any(_rx(p).search(folded) for p in lex.intents["no"])
        if said_yes and not said_no:
            return True
    return False
