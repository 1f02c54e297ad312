"""conversations flagged by the red-flag guard

Revision ID: 0006_safety
Revises: 0005_merge_heads
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import voice_agent.store.types

revision: str = "0006_safety"
down_revision: str | None = "0011_backends"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("conversation_state", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("flagged", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column("flagged_at", voice_agent.store.types.UTCDateTime(), nullable=True)
        )
        batch_op.create_index(
            batch_op.f("ix_conversation_state_flagged"), ["flagged"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("conversation_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversation_state_flagged"))
        batch_op.drop_column("flagged_at")
        batch_op.drop_column("flagged")
