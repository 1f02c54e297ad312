"""Keys that protect patient data at rest: a Fernet key ring (newest key first) and a separate
HMAC key for phone look-ups.

Fernet (``cryptography``'s MultiFernet) rather than raw AES-GCM: it is authenticated encryption
with a random IV per value and a versioned token format, so we manage no nonces, and MultiFernet
decrypts with any key of the ring and re-encrypts with the first one, which is exactly key
rotation. Its cost (AES-128-CBC + HMAC-SHA256, ~60 bytes and base64 per value) is small next to
a database round trip.

Where the keys come from, in order:
1. ``VOICE_AGENT_ENCRYPTION_KEYS`` (comma-separated Fernet keys, newest first) together with
   ``VOICE_AGENT_LOOKUP_KEY`` (≥ 32 characters) — required for PostgreSQL and for production;
2. otherwise, for an SQLite file, a key file created once beside the database (mode 0600), so the
   embedded default starts with no set-up. Anyone who can read the data folder can read the key:
   the README says production must set the variables;
3. an in-memory SQLite database gets keys that live as long as the process (as does its data).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.engine import make_url

MIN_LOOKUP_KEY_CHARS = 32
TOKEN_PREFIX = "gAAAAA"
"""Every Fernet token starts with version byte 0x80 and a 64-bit timestamp: base64 ``gAAAAA``."""


ERASED_HASH_PREFIX = "erased:"
"""``patient.phone_hash`` of an erased patient: ``erased:<id>``, which no look-up hash equals."""


class InvalidKey(ValueError):
    """A key that cannot be used; the message names the variable but never shows the key."""


class MissingKeys(RuntimeError):
    """Encrypted data was touched on a database for which no keys are known."""


class UndecryptableValue(RuntimeError):
    """A stored value that none of the configured keys opens (a key was removed too early)."""


def parse_encryption_keys(raw: str) -> list[bytes]:
    """Comma- or whitespace-separated Fernet keys, newest first; each must be 32 random bytes in
    url-safe base64 (``Fernet.generate_key()``); a short or malformed key is refused."""
    parts = [part for part in raw.replace(",", " ").split() if part]
    if not parts:
        raise InvalidKey("no key given")
    keys: list[bytes] = []
    for index, part in enumerate(parts, start=1):
        try:
            decoded = base64.urlsafe_b64decode(part.encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            decoded = b""
        if len(decoded) != 32:
            raise InvalidKey(
                f"key #{index} is not a Fernet key (32 bytes in url-safe base64; "
                "make one with `voice-agent keys generate`)"
            )
        keys.append(part.encode("ascii"))
    return keys


def check_lookup_key(raw: str) -> bytes:
    if len(raw) < MIN_LOOKUP_KEY_CHARS:
        raise InvalidKey(f"must be at least {MIN_LOOKUP_KEY_CHARS} characters")
    return raw.encode("utf-8")


def generate_encryption_key() -> str:
    return Fernet.generate_key().decode("ascii")


def generate_lookup_key() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Keyring:
    """Encrypts with the newest key, decrypts with any; hashes look-up values with its own key."""

    encryption_keys: tuple[bytes, ...] = field(repr=False)
    lookup_key: bytes = field(repr=False)
    source: str
    """Where the keys came from ("environment", a key file's path, "memory"), for messages."""
    _fernet: MultiFernet = field(init=False, repr=False, compare=False)
    _newest: Fernet = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        fernet = MultiFernet([Fernet(key) for key in self.encryption_keys])
        object.__setattr__(self, "_fernet", fernet)
        object.__setattr__(self, "_newest", Fernet(self.encryption_keys[0]))

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeEncodeError):
            raise UndecryptableValue(
                "a stored value cannot be decrypted with the configured keys "
                "(keep old keys in VOICE_AGENT_ENCRYPTION_KEYS until `voice-agent keys rotate` "
                "has run)"
            ) from None

    def is_current(self, token: str) -> bool:
        """Encrypted with the newest key (rotation skips these, so it can resume)."""
        try:
            self._newest.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            return False
        return True

    def rotate(self, token: str) -> str:
        """The same value re-encrypted with the newest key."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeEncodeError):
            raise UndecryptableValue("a stored value cannot be decrypted with the keys") from None

    def lookup_hash(self, value: str) -> str:
        """HMAC-SHA256 of a normalized value (an E.164 phone): equal inputs, equal hashes, and
        without the key a hash cannot be tested against the few billion possible phones."""
        return hmac.new(self.lookup_key, value.encode("utf-8"), hashlib.sha256).hexdigest()


def looks_encrypted(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX)


def keyring_from_values(encryption_keys: str, lookup_key: str, source: str) -> Keyring:
    return Keyring(
        encryption_keys=tuple(parse_encryption_keys(encryption_keys)),
        lookup_key=check_lookup_key(lookup_key),
        source=source,
    )


def key_file_for(database_url: str) -> Path | None:
    """``<database file>.keys`` for an SQLite file; ``None`` for memory or a server database."""
    url = make_url(database_url)
    if not url.drivername.startswith("sqlite"):
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return None
    return Path(database).resolve().with_name(Path(database).name + ".keys")


def load_or_create_key_file(path: Path) -> Keyring:
    """The embedded default's keys: read the file, or create it once with mode 0600.

    Creation uses ``O_EXCL`` so two processes starting together cannot write two different keys.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        content = json.dumps(
            {"encryption_keys": [generate_encryption_key()], "lookup_key": generate_lookup_key()}
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process won the race: read its file below
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return keyring_from_values(
            ",".join(data["encryption_keys"]), data["lookup_key"], source=str(path)
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidKey(f"the key file {path} is unreadable: {exc}") from None


def memory_keyring() -> Keyring:
    return keyring_from_values(
        generate_encryption_key(), generate_lookup_key(), source="memory (in-memory database)"
    )
