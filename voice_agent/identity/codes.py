"""One-time codes: drawn with ``secrets``, stored only as a salted scrypt hash (stdlib).

scrypt rather than a plain hash: six digits are a million guesses, which a fast hash answers in a
second for anyone who reads the table; scrypt makes each guess cost tens of milliseconds.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

CODE_DIGITS = 6
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
_SEPARATORS = re.compile(r"[\s.\-–—]+")
_DIGIT_RUNS = re.compile(r"\d(?:[\s.\-–—]*\d)*")


def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def new_salt() -> str:
    return secrets.token_hex(16)


def hash_code(code: str, salt: str) -> str:
    return hashlib.scrypt(code.encode(), salt=bytes.fromhex(salt), **_SCRYPT).hex()


def code_matches(code: str, salt: str, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_code(code, salt), expected_hash)


def spoken_code(text: str) -> str | None:
    """The code in what the caller typed or said ("123 456", "é 12-34-56#"), or None."""
    groups = [_SEPARATORS.sub("", g) for g in _DIGIT_RUNS.findall(text)]
    codes = [g for g in groups if len(g) == CODE_DIGITS]
    return codes[0] if len(codes) == 1 and len(groups) == 1 else None
