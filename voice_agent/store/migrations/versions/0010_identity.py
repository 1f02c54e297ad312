"""identity checks; who changed what in the interaction log

Revision ID: 0010_identity
Revises: 0005_merge_heads
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import voice_agent.store.types

revision: str = "0010_identity"
down_revision: str | None = "0009_privacy"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "identity_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", _text(128), nullable=False),
        sa.Column("channel", _text(16), nullable=False),
        sa.Column("patient_id", _text(32), nullable=True),
        sa.Column("code_hash", _text(128), nullable=True),
        sa.Column("code_salt", _text(64), nullable=True),
        sa.Column("route", _text(16), nullable=True),
        sa.Column("sent_at", voice_agent.store.types.UTCDateTime(), nullable=True),
        sa.Column("expires_at", voice_agent.store.types.UTCDateTime(), nullable=True),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("verified_patient_id", _text(32), nullable=True),
        sa.Column("verified_by", _text(16), nullable=True),
        sa.Column("verified_at", voice_agent.store.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", voice_agent.store.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", voice_agent.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("conversation_id"),
    )
    with op.batch_alter_table("identity_check", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_identity_check_patient_id"), ["patient_id"])
        batch_op.create_index(batch_op.f("ix_identity_check_updated_at"), ["updated_at"])
    with op.batch_alter_table("interaction", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("actor", _text(16), nullable=False, server_default="system")
        )
        batch_op.add_column(sa.Column("actor_id", _text(64), nullable=True))
        batch_op.add_column(sa.Column("call_id", _text(128), nullable=True))
        batch_op.add_column(sa.Column("verified_by", _text(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("interaction", schema=None) as batch_op:
        batch_op.drop_column("verified_by")
        batch_op.drop_column("call_id")
        batch_op.drop_column("actor_id")
        batch_op.drop_column("actor")
    with op.batch_alter_table("identity_check", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_identity_check_updated_at"))
        batch_op.drop_index(batch_op.f("ix_identity_check_patient_id"))
    op.drop_table("identity_check")
