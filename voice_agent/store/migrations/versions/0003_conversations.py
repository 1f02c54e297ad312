"""conversation state of the text channels

Revision ID: 0003_conversations
Revises: 0001_initial
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import voice_agent.store.types

revision: str = "0003_conversations"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "conversation_state",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("updated_at", voice_agent.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    with op.batch_alter_table("conversation_state", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_conversation_state_updated_at"), ["updated_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("conversation_state", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversation_state_updated_at"))
    op.drop_table("conversation_state")
