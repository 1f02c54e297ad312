"""one head again: the outbox, conversations and confirmations branches joined

Revision ID: 0005_merge_heads
Revises: 0002_outbox, 0003_conversations, 0004_confirmations
"""

from collections.abc import Sequence

revision: str = "0005_merge_heads"
down_revision: str | Sequence[str] | None = (
    "0002_outbox",
    "0003_conversations",
    "0004_confirmations",
)
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to change: the three features' tables exist; from here on one line of history."""


def downgrade() -> None:
    pass
