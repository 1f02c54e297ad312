"""text-turn indexes: work_item by conversation; conversation_turn's duplicate index dropped

Every text turn asks for the open to-do items of its conversation (to fill in the contact they
lack): without an index on ``work_item.conversation_id`` that read every open item of the clinic.
``conversation_turn`` had an index on ``conversation_id`` next to the unique constraint on
``(conversation_id, seq)``, whose own index serves the same look-ups: every timeline row paid
for a second B-tree insert.

Revision ID: 0016_turn_indexes
Revises: 0015_learning
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0016_turn_indexes"
down_revision: str | None = "0015_learning"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("work_item", schema=None) as batch_op:
        batch_op.create_index(
            "ix_work_item_conversation_status", ["conversation_id", "status"], unique=False
        )
    with op.batch_alter_table("conversation_turn", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_conversation_turn_conversation_id"))


def downgrade() -> None:
    with op.batch_alter_table("conversation_turn", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_conversation_turn_conversation_id"), ["conversation_id"], unique=False
        )
    with op.batch_alter_table("work_item", schema=None) as batch_op:
        batch_op.drop_index("ix_work_item_conversation_status")
