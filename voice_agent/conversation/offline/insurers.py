"""Health plans and insurers patients name, so that one the clinic does not list gets "we don't
work with Hapvida; we accept …" instead of "I don't have that information" and a hand-over.

The clinic file's convênios are the whole truth of what it accepts; this list only recognises a
name as a health plan. Each entry: a pattern over folded text (lower case, no accents, й→и,
ё→е) and the name as replies say it. Any language's patient may name any of them.
Patterns are data: adding an insurer is adding a line here.
"""

from __future__ import annotations

INSURERS: tuple[tuple[str, str], ...] = (
    # Brazil (ANS's largest operators)
    (r"\bhapvida\b", "Hapvida"),
    (r"\bnotre ?dame\b|\bintermedica\b|\bgndi\b", "NotreDame Intermédica"),
    (r"\bamil\b", "Amil"),
    (r"\bsul ?america\b", "SulAmérica"),
    (r"\bbradesco\b", "Bradesco Saúde"),
    (r"\bunimed\b", "Unimed"),
    (r"\bporto seguro\b", "Porto Seguro Saúde"),
    (r"\bgolden cross\b", "Golden Cross"),
    (r"\bprevent senior\b", "Prevent Senior"),
    (r"\bcassi\b", "Cassi"),
    (r"\bgeap\b", "Geap"),
    (r"\bcare plus\b", "Care Plus"),
    (r"\bomint\b", "Omint"),
    (r"\bmediservice\b", "Mediservice"),
    (r"\bsao cristovao saude\b", "São Cristóvão Saúde"),
    (r"\bsompo\b", "Sompo Saúde"),
    (r"\bcabesp\b", "Cabesp"),
    (r"\bpostal saude\b", "Postal Saúde"),
    (r"\bsus\b", "SUS"),
    # Russia
    (r"\bальфа ?страхован\w*", "АльфаСтрахование"),
    (r"\bингосстрах\w*", "Ингосстрах"),
    (r"\bсогаз\w*", "СОГАЗ"),
    (r"\bресо\b|\bресо-гарант\w*", "РЕСО-Гарантия"),
    (r"\bренессанс\w*", "Ренессанс страхование"),
    (r"\bсогласи[ея]\b", "Согласие"),
    (r"\bвск\b", "ВСК"),
    (r"\bросгосстрах\w*", "Росгосстрах"),
    (r"\bомс\b", "ОМС"),
    # International
    (r"\bcigna\b", "Cigna"),
    (r"\baetna\b", "Aetna"),
    (r"\bbupa\b", "Bupa"),
    (r"\ballianz\b", "Allianz Care"),
    (r"\baxa\b", "AXA"),
    (r"\bmetlife\b", "MetLife"),
    (r"\bblue cross\b", "Blue Cross"),
    (r"\bgeoblue\b", "GeoBlue"),
)
