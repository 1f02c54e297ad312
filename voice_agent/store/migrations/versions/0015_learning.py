"""learning data and models: offer_set, offer_shown, learned_model; appointment status attended

Revision ID: 0015_learning
Revises: 0012_relatives
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import voice_agent.store.types

revision: str = "0015_learning"
down_revision: str | None = "0014_worklist"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OUTCOMES = ("chosen", "rejected", "other_times", "abandoned")
KINDS = ("ranking", "no_show")
STATUSES = ("promoted", "rejected", "retired")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TYPE appointmentstatus ADD VALUE IF NOT EXISTS 'attended'")
    op.create_table(
        "offer_set",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True),
        sa.Column("service_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("ranker", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("created_at", voice_agent.store.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", voice_agent.store.types.UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.Enum(*OUTCOMES, name="offeroutcome"), nullable=True),
        sa.Column("settled_at", voice_agent.store.types.UTCDateTime(), nullable=True),
        sa.Column("chosen_rank", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("offer_set", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_offer_set_holder"), ["holder"], unique=False)
        batch_op.create_index(batch_op.f("ix_offer_set_created_at"), ["created_at"], unique=False)
        batch_op.create_index(
            "ix_offer_set_outcome_expires", ["outcome", "expires_at"], unique=False
        )
    op.create_table(
        "offer_shown",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("set_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("doctor_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("start", voice_agent.store.types.UTCDateTime(), nullable=False),
        sa.Column("rules_score", sa.Float(), nullable=False),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("chosen", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["set_id"], ["offer_set.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("offer_shown", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_offer_shown_set_id"), ["set_id"], unique=False)
        batch_op.create_index("ix_offer_shown_doctor_start", ["doctor_id", "start"], unique=False)
    op.create_table(
        "learned_model",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Enum(*KINDS, name="modelkind"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.Enum(*STATUSES, name="modelstatus"), nullable=False),
        sa.Column("created_at", voice_agent.store.types.UTCDateTime(), nullable=False),
        sa.Column("trained_until", voice_agent.store.types.UTCDateTime(), nullable=False),
        sa.Column("examples", sa.Integer(), nullable=False),
        sa.Column("sklearn_version", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("metrics", sa.Text(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("learned_model", schema=None) as batch_op:
        batch_op.create_index("ix_learned_model_kind_status", ["kind", "status"], unique=False)


def downgrade() -> None:
    op.drop_table("learned_model")
    op.drop_table("offer_shown")
    op.drop_table("offer_set")
    if op.get_bind().dialect.name == "postgresql":
        for name in ("offeroutcome", "modelkind", "modelstatus"):
            op.execute(f"DROP TYPE IF EXISTS {name}")
    # 'attended' stays in appointmentstatus: PostgreSQL cannot drop an enum value.
