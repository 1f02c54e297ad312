"""Date and time wishes: "na próxima terça à tarde", "не в понедельник", "next week, any
afternoon" read relative to the clinic's today into the arguments of ``find_slots``."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field, replace
from datetime import date, time, timedelta
from typing import TYPE_CHECKING, Any

from voice_agent.clinic.model import Clinic, Weekday
from voice_agent.conversation.offline.lexicon import LEXICONS, Lexicon
from voice_agent.conversation.offline.nlu.patterns import rx

if TYPE_CHECKING:
    from voice_agent.conversation.offline.nlu.understanding import Understanding


WEEKDAY_IDS = tuple(w.value for w in Weekday)


CLOCK = re.compile(r"\b([01]?\d|2[0-3])(?::|h)([0-5]\d)\b")


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

    def before(
        self, day: date, at: time, first_day: date, *, keep_days: bool = False
    ) -> list[TimeWish]:
        """Sooner than a slot offered on ``day`` at ``at`` ("tem mais cedo?"): the bookable days
        before it (the days asked for are dropped: sooner is the wish now; times of day kept),
        then that day before ``at``. ``keep_days`` ("mais cedo na quinta"): the same days, before
        ``at``. Empty when nothing is left before it."""
        minutes = at.hour * 60 + at.minute - 1
        latest = time(minutes // 60, minutes % 60) if minutes >= 0 else None
        if latest is not None and self.latest is not None:
            latest = min(latest, self.latest)
        earlier_in_day = latest is not None and (self.earliest is None or self.earliest < latest)
        if keep_days:
            return [replace(self, latest=latest, today_asked=False)] if earlier_in_day else []
        sooner: list[TimeWish] = []
        if first_day < day:
            before_day = day - timedelta(days=1)
            sooner.append(
                replace(
                    self,
                    dates=[],
                    date_from=first_day,
                    date_to=before_day,
                    weekdays=[],
                    today_asked=False,
                )
            )
        if earlier_in_day:
            sooner.append(self.on_day(day, latest=latest))
        return sooner

    def later_than(self, day: date) -> TimeWish:
        """Postponed past ``day`` ("adiar pra semana seguinte" with the appointment next week):
        a window that reaches ``day`` moves on by weeks until it starts after it ("next week"
        said of an appointment next week is the week after), and no day up to ``day`` is kept."""
        start, end = self.date_from, self.date_to
        if start is not None and end is not None:
            while start <= day:
                start, end = start + timedelta(days=7), end + timedelta(days=7)
        start = max(start or day, day + timedelta(days=1))
        dates = [d for d in self.dates if d > day]
        return replace(self, dates=dates, date_from=start, date_to=end)

    def on_day(
        self, day: date, earliest: time | None = None, latest: time | None = None
    ) -> TimeWish:
        """These wishes on ``day`` alone, from ``earliest`` / until ``latest`` when given."""
        return replace(
            self,
            dates=[day],
            date_from=None,
            date_to=None,
            weekdays=[],
            earliest=earliest or self.earliest,
            latest=latest or self.latest,
            today_asked=False,
        )

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
                rest = self.on_day(day, earliest=earliest)
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


def parts_of_day(found: Understanding, text: str, language: str, clinic: Clinic) -> None:
    """Early morning, late afternoon, and a night hour ("3 da manhã", "3 am", "3 часа ночи"),
    which the clock reader alone would take for 15:00 or search for at 03:00."""
    wish = found.wish
    periods = clinic.periods_by_id
    if (p := _LATE_AFTERNOON.get(language)) and rx(p).search(text) and "afternoon" in periods:
        end = periods["afternoon"].end
        wish.periods = ["afternoon"]
        wish.earliest = time(max(end.hour - LATE_AFTERNOON_HOURS, 0), end.minute)
        wish.latest, found.clock = None, None
    elif (p := _EARLY_MORNING.get(language)) and rx(p).search(text):
        wish.periods = ["morning"]
        wish.latest, wish.earliest, found.clock = EARLY_MORNING_END, None, None
    if (p := _NIGHT_HOUR.get(language)) and (match := rx(p).search(text)):
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


def parse_when(text: str, language: str, today: date) -> tuple[TimeWish, list[str], time | None]:
    """Date/time wishes in folded ``text``, relative to ``today`` (the clinic's local date)."""
    lex = LEXICONS.get(language, LEXICONS["en"])
    wish = TimeWish()
    text = rx(lex.period_blockers).sub(" ", text)
    mentions: list[str] = []
    # Days: relative words first, longest first, then masked so "amanhã" inside "depois de
    # amanhã" is not read twice.
    for pattern, offset in lex.relative_days:
        match = rx(pattern).search(text)
        if match:
            if offset == 0:
                wish.today_asked = True
            else:
                wish.dates.append(today + timedelta(days=offset))
            text = text[: match.start()] + " " + text[match.end() :]
    if (match := rx(lex.in_days).search(text)) is not None:
        wish.dates.append(today + timedelta(days=int(match.group(1))))
    monday = today - timedelta(days=today.weekday())
    if rx(lex.next_week).search(text):
        wish.date_from = monday + timedelta(days=7)
        wish.date_to = monday + timedelta(days=13)
    elif rx(lex.this_week).search(text):
        wish.date_from, wish.date_to = today, monday + timedelta(days=6)
    if rx(lex.next_month).search(text):
        first = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
        wish.date_from = first
        wish.date_to = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    if rx(lex.weekend).search(text):
        wish.weekdays += ["sat", "sun"]
    wish.dates += _explicit_dates(text, lex, today, wish)
    for weekday, pattern in lex.weekdays.items():
        for match in rx(pattern).finditer(text):
            before = text[: match.start()]
            mentions.append(weekday)
            if rx(lex.negation_before).search(before):
                wish.exclude_weekdays.append(weekday)
            elif rx(lex.next_before).search(before):
                wish.dates.append(_next_weekday(today, WEEKDAY_IDS.index(weekday)))
            else:
                wish.weekdays.append(weekday)
    wish.weekdays = _unique(w for w in wish.weekdays if w not in wish.exclude_weekdays)
    wish.exclude_weekdays = _unique(wish.exclude_weekdays)
    wish.dates = sorted(set(wish.dates))
    # Periods, with negation ("não de manhã" → the other periods).
    excluded: set[str] = set()
    for period, pattern in lex.periods.items():
        for match in rx(pattern).finditer(text):
            if rx(lex.negation_before).search(text[: match.start()]):
                excluded.add(period)
            elif period not in wish.periods:
                wish.periods.append(period)
    if excluded and not wish.periods:
        wish.periods = [p for p in ("morning", "afternoon", "evening") if p not in excluded]
    clock = _clock_wishes(text, lex, language, wish)
    if wish.earliest is None and rx(lex.after_lunch).search(text):
        wish.earliest = LUNCH_END
    return wish, _unique(mentions), clock


_HOUR = r"(\d{1,2})(?!\d)(?:(?::|h)(\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?"
_AT_WORDS = {"as", "pelas", "at", "around", "в", "к"}


def _clock_wishes(text: str, lex: Lexicon, language: str, wish: TimeWish) -> time | None:
    """earliest/latest from "depois das 15h", "после 15", "before 11am"; returns a bare time
    ("às 10h30", "the 10:30 one", "в 10"), which also becomes a one-hour window."""
    suffix = rf"(?:\s*{lex.hour_suffix}\b)?"
    text = rx(lex.noon).sub(" 12:00 ", text)
    text = re.sub(r"\b(\d{1,2})\s*(?:h|horas?)?\s+e meia\b", r"\1:30", text)
    text = re.sub(r"\bhalf past (\d{1,2})\b", r"\1:30", text)
    text = re.sub(r"\b(\d{1,2})\s*(?:h|horas?)?\s+e quinze\b", r"\1:15", text)
    for kind, marker in (("after", lex.after), ("before", lex.before)):
        for match in rx(rf"\b{marker}\s+{_HOUR}{suffix}").finditer(text):
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
    at = rx(rf"\b({lex.at})\s+{_HOUR}{suffix}")
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
    if bare is None and (clock := CLOCK.search(text)) is not None:
        bare = time(int(clock.group(1)), int(clock.group(2)))
    if bare is None:
        hour = rx(rf"\b(\d{{1,2}})\s*{lex.hour_suffix}\b").search(text)
        if hour and int(hour.group(1)) < 24:
            bare = time(int(hour.group(1)), 0)
    am_pm = re.search(r"\b(\d{1,2})\s*(am|pm)\b", text) if bare is None else None
    if am_pm is not None and 1 <= int(am_pm.group(1)) <= 12:
        bare = time(int(am_pm.group(1)) % 12 + (12 if am_pm.group(2) == "pm" else 0), 0)
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
        if year is not None and (this_year is None or this_year < today):
            if this_year is not None and (today - this_year).days <= PAST_YEAR_DAYS:
                wish.past.append(this_year)  # "02/12/2026" said on the 3rd: a day gone
            return  # "03/04/1961": a birth date or a past event, not a day to book
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
        rx_after = rx(
            rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:de\s+|of\s+)?{month_pattern}\w*\b"
            r"(?:,?\s+(?:de\s+)?(\d{4})\b)?"
        )
        rx_before = rx(
            rf"\b{month_pattern}\w*\s+(\d{{1,2}})(?:st|nd|rd|th)?\b(?:,?\s+(\d{{4}})\b)?"
        )
        for month_rx in (rx_after, rx_before):
            for match in month_rx.finditer(text):
                said_year = int(match.group(2)) if match.group(2) else None
                add(int(match.group(1)), index, said_year, match.group(0))
    months = "|".join(lex.months)
    for match in rx(lex.day_of_month).finditer(text):
        if rx(rf"^\s+(de\s+|of\s+)?({months})").match(text[match.end() :]):
            continue  # "dia 10 de novembro": read above with its month
        if re.match(r"[/.]\d", text[match.end() :]):
            continue  # "dia 2/12/2026": read above as a full date
        found_day = _next_day_of_month(int(match.group(1)), today)
        if found_day:
            found.append(found_day)
    return found


PAST_DAYS = 62
"""A date without a year up to two months back is a date gone, not one of next year."""
PAST_YEAR_DAYS = 366
"""A date said with its year, up to a year back, is a day gone the patient is told about; an
older one (a birth date, "since 2019") is no wish at all."""


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


def _next_day_of_month(day: int, today: date) -> date | None:
    """ "dia 2" said on December 3 is January 2 (not December 2 of next year): this month's
    day when it is still ahead, else the next month that has it ("dia 31" in November: the
    31st of December)."""
    first = today.replace(day=1)
    for _ in range(3):
        try:
            value = first.replace(day=day)
        except ValueError:
            value = None
        if value is not None and value >= today:
            return value
        first = (first + timedelta(days=32)).replace(day=1)
    return None


def _next_weekday(today: date, weekday: int) -> date:
    days = (weekday - today.weekday()) % 7 or 7
    return today + timedelta(days=days)


def _unique(items: Any) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen
