"""Dates and times said the way a receptionist says them, in pt-BR, ru and en."""

from __future__ import annotations

from datetime import date, datetime

WEEKDAYS = {
    "pt-BR": (
        "segunda-feira",
        "terça-feira",
        "quarta-feira",
        "quinta-feira",
        "sexta-feira",
        "sábado",
        "domingo",
    ),
    "ru": ("понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
MONTHS = {
    "pt-BR": (
        "janeiro",
        "fevereiro",
        "março",
        "abril",
        "maio",
        "junho",
        "julho",
        "agosto",
        "setembro",
        "outubro",
        "novembro",
        "dezembro",
    ),
    # Genitive case, as in "24 ноября".
    "ru": (
        "января",
        "февраля",
        "марта",
        "апреля",
        "мая",
        "июня",
        "июля",
        "августа",
        "сентября",
        "октября",
        "ноября",
        "декабря",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}


def language_or_default(language: str | None) -> str:
    if language in WEEKDAYS:
        return language
    if language and language.lower().startswith("pt"):
        return "pt-BR"
    if language and language.lower().startswith("ru"):
        return "ru"
    return "en"


def say_date(day: date, language: str) -> str:
    language = language_or_default(language)
    weekday = WEEKDAYS[language][day.weekday()]
    month = MONTHS[language][day.month - 1]
    if language == "pt-BR":
        return f"{weekday}, {day.day} de {month}"
    if language == "ru":
        return f"{weekday}, {day.day} {month}"
    return f"{weekday}, {month} {day.day}"


def say_time(moment: datetime, language: str) -> str:
    language = language_or_default(language)
    if language == "en":
        hour = moment.hour % 12 or 12
        suffix = "am" if moment.hour < 12 else "pm"
        return f"{hour}:{moment.minute:02d} {suffix}"
    return f"{moment.hour:02d}:{moment.minute:02d}"


def say_when(moment: datetime, language: str) -> str:
    """'terça-feira, 24 de novembro, às 14:00' — ``moment`` already in the clinic's timezone."""
    language = language_or_default(language)
    day, clock = say_date(moment.date(), language), say_time(moment, language)
    if language == "pt-BR":
        return f"{day}, às {clock}"
    if language == "ru":
        return f"{day}, в {clock}"
    return f"{day} at {clock}"


CURRENCIES = {"BR": ("R$", "before"), "RU": ("₽", "after"), "US": ("$", "before")}


def say_money(amount: object, country: str) -> str:
    """450 → 'R$ 450,00' in Brazil, '3 500 ₽' in Russia."""
    value = float(str(amount))
    symbol, position = CURRENCIES.get(country, ("", "after"))
    if country == "BR":
        text = f"{value:,.2f}".replace(",", "X").replace(".", ",").replace("X", ".")
    elif country == "RU":
        text = f"{value:,.0f}".replace(",", " ") if value.is_integer() else f"{value:,.2f}"
        text = text.replace(",", " ")
    else:
        text = f"{value:,.2f}"
    if not symbol:
        return text
    return f"{symbol} {text}" if position == "before" else f"{text} {symbol}"
