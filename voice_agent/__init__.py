"""A voice-first AI receptionist for doctors' offices and clinics."""

__version__ = "0.1.0"
