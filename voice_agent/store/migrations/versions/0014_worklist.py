"""the staff's to-do queue (work_item + its audit trail), text conversation turns, and who
changed the clinic data (clinic_version.author_id, summary)

Revision ID: 0014_worklist
Revises: 0013_staff
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import voice_agent.store.types

revision: str = "0014_worklist"
down_revision: str | None = "0013_staff"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_String = sqlmodel.sql.sqltypes.AutoString
_UTC = voice_agent.store.types.UTCDateTime
_Encrypted = voice_agent.store.types.EncryptedText


def upgrade() -> None:
    op.create_table(
        "work_item",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", _String(length=16), nullable=False),
        sa.Column("status", _String(length=16), nullable=False),
        sa.Column("open_key", sa.String(length=200), nullable=True),
        sa.Column("created_at", _UTC(), nullable=False),
        sa.Column("updated_at", _UTC(), nullable=False),
        sa.Column("patient_id", _String(length=32), nullable=True),
        sa.Column("phone", _Encrypted(), nullable=True),
        sa.Column("language", _String(length=8), nullable=True),
        sa.Column("channel", _String(length=16), nullable=True),
        sa.Column("call_sid", _String(length=64), nullable=True),
        sa.Column("conversation_id", _String(length=128), nullable=True),
        sa.Column("appointment_id", _String(length=32), nullable=True),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("interaction_id", sa.Integer(), nullable=True),
        sa.Column("summary", _Encrypted(), nullable=True),
        sa.Column("details", _Encrypted(), nullable=False),
        sa.Column("taken_by", sa.Integer(), sa.ForeignKey("staff_account.id"), nullable=True),
        sa.Column("taken_at", _UTC(), nullable=True),
        sa.Column("resolved_by", sa.Integer(), sa.ForeignKey("staff_account.id"), nullable=True),
        sa.Column("resolved_at", _UTC(), nullable=True),
        sa.Column("resolution", _Encrypted(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("open_key"),
    )
    with op.batch_alter_table("work_item", schema=None) as batch_op:
        batch_op.create_index("ix_work_item_status_created", ["status", "created_at"])
        batch_op.create_index(batch_op.f("ix_work_item_patient_id"), ["patient_id"])

    op.create_table(
        "work_item_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("at", _UTC(), nullable=False),
        sa.Column("action", _String(length=16), nullable=False),
        sa.Column("actor", _String(length=16), nullable=False),
        sa.Column("actor_id", sa.Integer(), sa.ForeignKey("staff_account.id"), nullable=True),
        sa.Column("note", _Encrypted(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("work_item_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_work_item_event_item_id"), ["item_id"])

    op.create_table(
        "conversation_turn",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", _String(length=128), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("at", _UTC(), nullable=False),
        sa.Column("channel", _String(length=16), nullable=False),
        sa.Column("patient_id", _String(length=32), nullable=True),
        sa.Column("language", _String(length=8), nullable=True),
        sa.Column("kind", _String(length=16), nullable=False),
        sa.Column("engine", _String(length=16), nullable=True),
        sa.Column("content", _Encrypted(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("conversation_id", "seq"),
    )
    with op.batch_alter_table("conversation_turn", schema=None) as batch_op:
        batch_op.create_index("ix_conversation_turn_at", ["at"])
        batch_op.create_index(
            batch_op.f("ix_conversation_turn_conversation_id"), ["conversation_id"]
        )
        batch_op.create_index(batch_op.f("ix_conversation_turn_patient_id"), ["patient_id"])

    with op.batch_alter_table("clinic_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("author_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_clinic_version_author_id_staff_account", "staff_account", ["author_id"], ["id"]
        )
        batch_op.add_column(sa.Column("summary", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clinic_version", schema=None) as batch_op:
        batch_op.drop_constraint("fk_clinic_version_author_id_staff_account", type_="foreignkey")
        batch_op.drop_column("summary")
        batch_op.drop_column("author_id")
    with op.batch_alter_table("conversation_turn", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversation_turn_patient_id"))
        batch_op.drop_index(batch_op.f("ix_conversation_turn_conversation_id"))
        batch_op.drop_index("ix_conversation_turn_at")
    op.drop_table("conversation_turn")
    with op.batch_alter_table("work_item_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_work_item_event_item_id"))
    op.drop_table("work_item_event")
    with op.batch_alter_table("work_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_work_item_patient_id"))
        batch_op.drop_index("ix_work_item_status_created")
    op.drop_table("work_item")
