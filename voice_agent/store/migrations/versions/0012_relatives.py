"""appointment.attendee_name: who attends when the caller books for a child or relative

Revision ID: 0012_relatives
Revises: 0008_replay
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import voice_agent.store.types

revision: str = "0012_relatives"
down_revision: str | None = "0008_replay"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable and empty for every existing row: the appointment was for the patient themself.
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("attendee_name", voice_agent.store.types.EncryptedText(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("appointment", schema=None) as batch_op:
        batch_op.drop_column("attendee_name")
