"""Conversation state of the text channels and the no-AI voice fallback, one row per session.

The state itself is a JSON document (``voice_agent.conversation.state.ConversationState``); the
row is keyed by a keyed hash (HMAC) of channel and session, so no phone number can be
recovered from the key; the state itself is encrypted (``voice_agent.crypto``).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

from sqlalchemy import Boolean, Column, false
from sqlmodel import Field, SQLModel

from voice_agent.store.types import EncryptedText, UTCDateTime, utcnow


class ConversationRecord(SQLModel, table=True):
    __tablename__ = "conversation_state"

    key: str = Field(primary_key=True, max_length=64, description="Hash of channel + session.")
    channel: str = Field(max_length=16)
    state: str = Field(sa_column=Column(EncryptedText(), nullable=False))
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=True)
    )
    flagged: bool = Field(
        default=False,
        sa_column=Column(Boolean, nullable=False, server_default=false(), index=True),
        description="A red flag (possible emergency) was heard: staff should look at it.",
    )
    flagged_at: datetime | None = Field(
        default=None, sa_column=Column(UTCDateTime(), nullable=True)
    )


def state_key(channel: str, session_key: str, secret: bytes) -> str:
    """Keyed (HMAC-SHA256 under the look-up key): a session key is often a phone number, and a
    plain hash of one is found by trying the few billion possible numbers."""
    message = f"{channel}\x00{session_key}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:40]


def conversation_id_of(key: str) -> str:
    """A conversation's id (the holder of its offers, the key of its timeline and to-do items):
    derived from its state's row key, never a phone number."""
    return f"conv-{key[:24]}"
