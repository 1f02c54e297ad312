"""Energy voice-activity detection, standing in for the Realtime API's server VAD.

Counts audio, not wall time: a test that streams a fixture 10x faster than real time gets the
same ``audio_start_ms`` / ``audio_end_ms`` as one that streams it in real time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.fakes.audio import audioop

__all__ = ["AudioFormat", "EnergyVad", "SpeechStarted", "SpeechStopped", "VadConfig"]

FRAME_MS = 20


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """How to turn one wire format into 16-bit linear samples for energy measurement."""

    bytes_per_ms: int
    to_linear: Callable[[bytes], bytes]

    @classmethod
    def for_type(cls, format_type: str) -> AudioFormat:
        if format_type == "audio/pcmu":
            return cls(8, lambda b: audioop.ulaw2lin(b, 2))
        if format_type == "audio/pcma":
            return cls(8, lambda b: audioop.alaw2lin(b, 2))
        return cls(48, lambda b: b)  # audio/pcm: 24 kHz 16-bit little-endian


@dataclass(frozen=True, slots=True)
class VadConfig:
    rms_threshold: int = 300
    min_speech_ms: int = 60
    silence_ms: int = 500
    prefix_padding_ms: int = 300


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    audio_start_ms: int


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    audio_end_ms: int


class EnergyVad:
    """RMS over 20 ms frames, a minimum run of voiced frames, and a silence hangover."""

    def __init__(self, config: VadConfig, audio_format: AudioFormat) -> None:
        self.config = config
        self._pending = bytearray()
        self.set_format(audio_format)
        self._frames = 0  # frames analysed since the session started
        self._voiced_run = 0
        self._silent_run = 0
        self.in_speech = False

    def set_format(self, audio_format: AudioFormat) -> None:
        """Switch the input format (``session.update``); buffered partial audio is dropped."""
        self.format = audio_format
        self._frame_bytes = audio_format.bytes_per_ms * FRAME_MS
        self._pending.clear()

    @property
    def position_ms(self) -> int:
        return self._frames * FRAME_MS

    def feed(self, audio: bytes) -> list[SpeechStarted | SpeechStopped]:
        """Analyse appended audio; return the transitions it caused, in order."""
        self._pending += audio
        events: list[SpeechStarted | SpeechStopped] = []
        size = self._frame_bytes
        cfg = self.config
        while len(self._pending) >= size:
            frame = bytes(self._pending[:size])
            del self._pending[:size]
            self._frames += 1
            voiced = audioop.rms(self.format.to_linear(frame), 2) >= cfg.rms_threshold
            if not self.in_speech:
                self._voiced_run = self._voiced_run + 1 if voiced else 0
                if self._voiced_run * FRAME_MS >= cfg.min_speech_ms:
                    self.in_speech = True
                    self._silent_run = 0
                    onset = (self._frames - self._voiced_run) * FRAME_MS
                    events.append(SpeechStarted(max(0, onset - cfg.prefix_padding_ms)))
            elif voiced:
                self._silent_run = 0
            else:
                self._silent_run += 1
                if self._silent_run * FRAME_MS >= cfg.silence_ms:
                    self.in_speech = False
                    self._voiced_run = 0
                    events.append(SpeechStopped(self.position_ms))
        return events
