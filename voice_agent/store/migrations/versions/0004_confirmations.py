"""confirmation steps of appointments

Revision ID: 0004_confirmations
Revises: 0001_initial
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import voice_agent.store.types

revision: str = "0004_confirmations"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUSES = ("pending", "running", "waiting", "done", "failed", "cancelled")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TYPE interactionkind ADD VALUE IF NOT EXISTS 'reminder'")
    op.create_table(
        "confirmation_step",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("appointment_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("via", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("due_at", voice_agent.store.types.UTCDateTime(), nullable=False),
        sa.Column("status", sa.Enum(*STATUSES, name="stepstatus"), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("call_sid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("message_sid", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("answered_by", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("lease_until", voice_agent.store.types.UTCDateTime(), nullable=True),
        sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("claimed_at", voice_agent.store.types.UTCDateTime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", voice_agent.store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", voice_agent.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("confirmation_step", schema=None) as batch_op:
        batch_op.create_index("ix_confirmation_step_status_due", ["status", "due_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_confirmation_step_appointment_id"), ["appointment_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_confirmation_step_call_sid"), ["call_sid"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("confirmation_step", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_confirmation_step_call_sid"))
        batch_op.drop_index(batch_op.f("ix_confirmation_step_appointment_id"))
        batch_op.drop_index("ix_confirmation_step_status_due")
    op.drop_table("confirmation_step")
    sa.Enum(name="stepstatus").drop(op.get_bind(), checkfirst=True)
