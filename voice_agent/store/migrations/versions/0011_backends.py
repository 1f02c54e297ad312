"""backend intents: clinic API bookings, moves and cancellations awaiting the API's answer

Revision ID: 0011_backends
Revises: 0005_merge_heads
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import voice_agent.store.types

revision: str = "0011_backends"
down_revision: str | None = "0010_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    string = sqlmodel.sql.sqltypes.AutoString
    utc = voice_agent.store.types.UTCDateTime
    op.create_table(
        "backend_intent",
        sa.Column("id", string(length=32), nullable=False),
        sa.Column("key", string(length=128), nullable=False),
        sa.Column("op", string(length=16), nullable=False),
        sa.Column("status", string(length=16), nullable=False),
        sa.Column("appointment_id", string(length=32), nullable=False),
        sa.Column("patient_id", string(length=32), nullable=False),
        sa.Column("holder", string(length=128), nullable=False),
        sa.Column("hold_id", string(length=32), nullable=True),
        sa.Column("doctor_id", string(length=64), nullable=False),
        sa.Column("service_id", string(length=64), nullable=False),
        sa.Column("start", utc(), nullable=False),
        sa.Column("end", utc(), nullable=False),
        sa.Column("insurance_id", string(length=64), nullable=True),
        sa.Column("channel", string(length=16), nullable=False),
        sa.Column("request_key", string(length=128), nullable=True),
        sa.Column("reason", string(length=200), nullable=False),
        sa.Column("external_id", string(length=256), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("notify", sa.Boolean(), nullable=False),
        sa.Column("outcome", string(length=32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", utc(), nullable=False),
        sa.Column("created_at", utc(), nullable=False),
        sa.Column("updated_at", utc(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("backend_intent", schema=None) as batch_op:
        batch_op.create_index(
            "ix_backend_intent_due", ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_backend_intent_appointment_id"), ["appointment_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("backend_intent", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_backend_intent_appointment_id"))
        batch_op.drop_index("ix_backend_intent_due")
    op.drop_table("backend_intent")
