"""Render the caller utterances used by tests and benchmarks as 8 kHz mono μ-law.

Synthetic speech (espeak-ng) is not a real caller, but it is speech-shaped: voiced energy,
pauses between words and realistic durations, which is what VAD and barge-in tests need.
Output is headerless μ-law at 8 kHz (exactly what Twilio Media Streams carries), padded with
300 ms of silence on both sides, plus ``manifest.json`` mapping each file to its language and
text (the fake Realtime server uses the text as the scripted transcript).

Regenerate (needs ``espeak-ng`` and ``sox`` on PATH)::

    python audio_fixtures/make_fixtures.py
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger("make_fixtures")

OUT_DIR = Path(__file__).resolve().parent
PAD_SECONDS = 0.3
MAX_BYTES = 100_000


class Utterance(NamedTuple):
    name: str
    voice: str
    language: str
    text: str


UTTERANCES: tuple[Utterance, ...] = (
    Utterance(
        "pt_br_greeting_cardiology",
        "pt-br",
        "pt-BR",
        "Olá, bom dia! Eu gostaria de marcar uma consulta com o cardiologista.",
    ),
    Utterance(
        "pt_br_general_practice",
        "pt-br",
        "pt-BR",
        "Preciso de uma consulta com clínico geral, por favor.",
    ),
    Utterance("pt_br_name", "pt-br", "pt-BR", "Meu nome é Maria Aparecida da Silva."),
    Utterance("pt_br_tomorrow_afternoon", "pt-br", "pt-BR", "Amanhã à tarde, se possível."),
    Utterance("pt_br_yes", "pt-br", "pt-BR", "Sim, pode confirmar."),
    Utterance("pt_br_goodbye", "pt-br", "pt-BR", "Muito obrigada, tchau!"),
    Utterance("pt_br_wait", "pt-br", "pt-BR", "Espera, espera!"),
    Utterance(
        "ru_greeting_cardiology",
        "ru",
        "ru",
        "Здравствуйте! Я хотел бы записаться на приём к кардиологу.",
    ),
    Utterance("ru_general_practice", "ru", "ru", "Мне нужен приём у терапевта, пожалуйста."),
    Utterance("ru_name", "ru", "ru", "Меня зовут Иван Петрович Смирнов."),
    Utterance("ru_tomorrow_afternoon", "ru", "ru", "Завтра после обеда, если можно."),
    Utterance("ru_yes", "ru", "ru", "Да, подтверждаю."),
    Utterance("ru_goodbye", "ru", "ru", "Спасибо, до свидания!"),
    Utterance("ru_wait", "ru", "ru", "Подождите, подождите!"),
    Utterance(
        "en_greeting_cardiology",
        "en-us",
        "en",
        "Hi, good morning. I'd like to book an appointment with a cardiologist.",
    ),
    Utterance(
        "en_general_practice", "en-us", "en", "I need to see a general practitioner, please."
    ),
    Utterance("en_name", "en-us", "en", "My name is John Carter."),
    Utterance("en_tomorrow_afternoon", "en-us", "en", "Tomorrow afternoon, if possible."),
    Utterance("en_yes", "en-us", "en", "Yes, that works for me."),
    Utterance("en_goodbye", "en-us", "en", "Thank you, goodbye!"),
    Utterance("en_wait", "en-us", "en", "Wait, wait!"),
)


def render(utterance: Utterance, out_dir: Path, work_dir: Path) -> Path:
    """espeak-ng -> WAV (22 kHz) -> sox: 8 kHz mono μ-law, normalised, silence-padded."""
    wav = work_dir / f"{utterance.name}.wav"
    target = out_dir / f"{utterance.name}.ulaw"
    subprocess.run(
        ["espeak-ng", "-v", utterance.voice, "-s", "150", "-w", str(wav), utterance.text],
        check=True,
    )
    subprocess.run(
        [
            "sox",
            str(wav),
            "-r", "8000", "-c", "1", "-e", "mu-law", "-t", "raw", str(target),
            "gain", "-n", "-3",
            "pad", str(PAD_SECONDS), str(PAD_SECONDS),
        ],
        check=True,
    )  # fmt: skip
    size = target.stat().st_size
    if size > MAX_BYTES:
        raise RuntimeError(f"{target.name} is {size} bytes, over the {MAX_BYTES} budget")
    return target


def main(out_dir: Path = OUT_DIR) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        log.error("missing tools: %s (apt-get install espeak-ng sox)", ", ".join(missing))
        return 1
    manifest: dict[str, dict[str, str | int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for utterance in UTTERANCES:
            path = render(utterance, out_dir, Path(tmp))
            size = path.stat().st_size
            manifest[utterance.name] = {
                "language": utterance.language,
                "text": utterance.text,
                "duration_ms": size // 8,
            }
            log.info("%-28s %6d bytes %5d ms", path.name, size, size // 8)
    (out_dir / "manifest.json").write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
