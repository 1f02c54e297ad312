"""The red-flag guard every channel calls first: a deterministic detector of emergencies in
patient utterances (pt-BR, ru, en) and what happens when one is heard."""

from voice_agent.safety.detector import RedFlag, RedFlagDetector, default_detector, detect_red_flag

__all__ = ["RedFlag", "RedFlagDetector", "default_detector", "detect_red_flag"]
