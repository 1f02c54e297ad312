"""Proving who the caller is before reading or changing an existing appointment.

Carrier-verified numbers (caller id on a call, the ``From`` of WhatsApp/SMS) need nothing more.
Anyone else (withheld caller id, web chat, digits spoken on the no-AI line) gives back a one-time
code sent to the phone on file, or the birth date on file.
"""

from voice_agent.identity.service import (
    CheckOutcome,
    IdentityPolicy,
    IdentityService,
    SendOutcome,
)

__all__ = ["CheckOutcome", "IdentityPolicy", "IdentityService", "SendOutcome"]
