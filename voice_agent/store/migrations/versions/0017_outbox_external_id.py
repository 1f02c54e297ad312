"""outbox rows indexed by the external id (Twilio's failure callback looks them up by SID)

A WhatsApp/SMS message that fails after Twilio accepted it comes back as a status callback
naming its ``MessageSid``; the row is found by ``outbox.external_id`` with ``FOR UPDATE``. The
outbox keeps every delivered row (confirmations, reminders, alerts), so without an index each
such callback read the whole table.

Revision ID: 0017_outbox_external_id
Revises: 0016_turn_indexes
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0017_outbox_external_id"
down_revision: str | None = "0016_turn_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_external_id", ["external_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_external_id")
