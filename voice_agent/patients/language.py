"""The language to speak to a patient in.

Here, below the channels, because both the voice call and the confirmation runner choose it.
"""

from __future__ import annotations

from voice_agent.clinic.model import Clinic
from voice_agent.store.tables import Patient


def caller_language(clinic: Clinic, patient: Patient | None) -> str:
    """The language to open the call in: the patient's, else the clinic's default."""
    if patient is not None and patient.language in clinic.languages:
        return patient.language
    return clinic.default_language
