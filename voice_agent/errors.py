"""The exceptions more than one layer raises or catches, in one place below every layer (a leaf:
it imports nothing of ours), so a module catches them without importing the layer that raises
them. Errors that stay inside one package (``BookingError`` in ``scheduling/``, ``ToolError`` in
``tools/``) stay with it."""

from __future__ import annotations


class ConfigurationError(RuntimeError):
    """Raised at start when a setting is missing or wrong; the message names the setting."""


class ClinicFileError(ValueError):
    """A clinic file that cannot be used; the message names the file, field path and reason."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


class InvalidPatientData(ValueError):
    """A phone, e-mail, name or birth date we cannot accept; the message can be said aloud."""


class CalendarUnavailable(RuntimeError):
    """The backend cannot be reached or failed; the caller retries later (outbox)."""


class SlotRejected(RuntimeError):
    """The backend refused the booking for a business reason (slot taken, patient blocked)."""


class RecordRejected(SlotRejected):
    """A confirming backend refused a record; ``code`` is ours (slot_taken, patient_blocked,
    not_found, rejected)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(detail or code)
        self.code = code


class GoogleUnavailable(RuntimeError):
    """Google could not be reached, or kept failing or throttling us after the retries."""


class PermanentFailure(Exception):
    """The effect can never succeed as it is (bad request): the row becomes a dead letter now."""


class OutsideWindow(Exception):
    """Twilio refused a free-form Body: the recipient's 24-hour window is closed."""
