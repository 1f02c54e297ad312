"""μ-law 8 kHz audio for tests: recorded fixtures, silence and a non-silent tone."""

from __future__ import annotations

import json
import math
import warnings
from functools import cache
from pathlib import Path

with warnings.catch_warnings():
    # Deprecated (not removed) on 3.11/3.12; audioop-lts provides it from 3.13 on.
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

__all__ = [
    "BYTES_PER_MS",
    "FIXTURES_DIR",
    "audioop",
    "fixture_names",
    "fixture_text",
    "load_fixture",
    "rms",
    "silence",
    "tone",
]

FIXTURES_DIR = Path(__file__).resolve().parents[2] / "audio_fixtures"
BYTES_PER_MS = 8
SILENCE_BYTE = 0xFF


@cache
def load_fixture(name: str) -> bytes:
    """Raw μ-law bytes of ``audio_fixtures/<name>.ulaw`` (the extension is optional)."""
    stem = name.removesuffix(".ulaw")
    return (FIXTURES_DIR / f"{stem}.ulaw").read_bytes()


@cache
def _manifest() -> dict[str, dict[str, str | int]]:
    return json.loads((FIXTURES_DIR / "manifest.json").read_text(encoding="utf-8"))


def fixture_text(name: str) -> str:
    """What the caller says in a fixture (to script the fake transcript)."""
    return str(_manifest()[name.removesuffix(".ulaw")]["text"])


def fixture_names(language: str | None = None) -> list[str]:
    """All fixture names, optionally only those of one language (``pt-BR``, ``ru``, ``en``)."""
    manifest = _manifest()
    return sorted(n for n, meta in manifest.items() if language in (None, meta["language"]))


def silence(ms: int) -> bytes:
    """μ-law digital silence (0xFF)."""
    return bytes([SILENCE_BYTE]) * (ms * BYTES_PER_MS)


@cache
def _tone_period(freq_hz: int, amplitude: int) -> bytes:
    samples = 8000 // math.gcd(8000, freq_hz)  # one exact period of the waveform
    step = 2 * math.pi * freq_hz / 8000
    pcm = b"".join(
        int(amplitude * math.sin(step * n)).to_bytes(2, "little", signed=True)
        for n in range(samples)
    )
    return audioop.lin2ulaw(pcm, 2)


def tone(ms: int, freq_hz: int = 440, amplitude: int = 8000) -> bytes:
    """A sine tone in μ-law: clearly non-silent audio of an exact length."""
    period = _tone_period(freq_hz, amplitude)
    n = ms * BYTES_PER_MS
    return (period * (n // len(period) + 1))[:n]


def rms(ulaw: bytes) -> int:
    """RMS energy of μ-law audio on the 16-bit linear scale."""
    return audioop.rms(audioop.ulaw2lin(ulaw, 2), 2) if ulaw else 0
