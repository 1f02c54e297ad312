"""patient data encrypted at rest; patients found by a keyed hash of their phone

Revision ID: 0009_privacy
Revises: 0005_merge_heads

Columns holding names, phones, e-mails, birth dates, transcripts, conversation states, free-text
notes and message payloads become TEXT holding Fernet tokens; existing plaintext is encrypted in
place with the engine's keys (``voice_agent.crypto``), and ``patient.phone_hash`` (HMAC-SHA256,
unique) replaces the unique index on the phone. Values that are already tokens are left alone. Conversation states are deleted: their rows
were keyed by a plain hash of the session (often a phone), and are now keyed by an HMAC.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from voice_agent.crypto.binding import keyring_of
from voice_agent.store.encrypted_fields import EncryptedTable, rewrite
from voice_agent.crypto.keys import looks_encrypted

revision: str = "0009_privacy"
down_revision: str | None = "0005_merge_heads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ENCRYPTED = (
    EncryptedTable("patient", "id", ("phone", "full_name", "email", "birth_date")),
    EncryptedTable("call_record", "call_sid", ("caller", "error", "transfer_summary")),
    EncryptedTable("call_event", "id", ("content",)),
    EncryptedTable("interaction", "id", ("details",)),
    EncryptedTable("outbox", "id", ("payload", "last_error")),
    EncryptedTable("confirmation_step", "id", ("error",)),
)
WIDENED = {
    "patient": (
        ("phone", sqlmodel.sql.sqltypes.AutoString(length=20), False),
        ("full_name", sqlmodel.sql.sqltypes.AutoString(length=200), True),
        ("email", sqlmodel.sql.sqltypes.AutoString(length=320), True),
        ("birth_date", sa.Date(), True),
    ),
    "call_record": (("caller", sqlmodel.sql.sqltypes.AutoString(length=32), False),),
}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TYPE interactionkind ADD VALUE IF NOT EXISTS 'erasure'")
    for table, columns in WIDENED.items():
        with op.batch_alter_table(table) as batch_op:
            for name, old_type, nullable in columns:
                batch_op.alter_column(
                    name,
                    existing_type=old_type,
                    type_=sa.Text(),
                    existing_nullable=nullable,
                    postgresql_using=f"{name}::text",
                )
    with op.batch_alter_table("patient") as batch_op:
        batch_op.drop_index("ix_patient_phone")
        batch_op.add_column(sa.Column("phone_hash", sa.String(length=64), nullable=True))

    def encrypt(value: str) -> str | None:
        if looks_encrypted(value):
            return None
        return keyring_of(bind.dialect).encrypt(value)

    for table in ENCRYPTED:
        rewrite(bind, table, encrypt)
    # Conversation rows were keyed by a plain SHA-256 of channel and session (often a phone):
    # keys are now keyed hashes, so the old rows could never be loaded again; they go.
    op.execute("DELETE FROM conversation_state")
    _fill_phone_hashes(bind)
    with op.batch_alter_table("patient") as batch_op:
        batch_op.alter_column(
            "phone_hash", existing_type=sa.String(length=64), nullable=False
        )
        batch_op.create_index("ix_patient_phone_hash", ["phone_hash"], unique=True)


def _fill_phone_hashes(bind: sa.Connection) -> None:
    patient = sa.table("patient", sa.column("id"), sa.column("phone"), sa.column("phone_hash"))
    rows = bind.execute(sa.select(patient.c.id, patient.c.phone)).all()
    if not rows:
        return
    keyring = keyring_of(bind.dialect)
    for patient_id, token in rows:
        phone_hash = keyring.lookup_hash(keyring.decrypt(token))
        bind.execute(
            sa.update(patient).where(patient.c.id == patient_id).values(phone_hash=phone_hash)
        )


def downgrade() -> None:
    bind = op.get_bind()

    def decrypt(value: str) -> str | None:
        if not looks_encrypted(value):
            return None
        return keyring_of(bind.dialect).decrypt(value)

    for table in ENCRYPTED:
        rewrite(bind, table, decrypt)
    op.execute("DELETE FROM conversation_state")  # keyed and encrypted: unreadable before 0009
    with op.batch_alter_table("patient") as batch_op:
        batch_op.drop_index("ix_patient_phone_hash")
        batch_op.drop_column("phone_hash")
        batch_op.create_index("ix_patient_phone", ["phone"], unique=True)
    for table, columns in WIDENED.items():
        with op.batch_alter_table(table) as batch_op:
            for name, old_type, nullable in columns:
                batch_op.alter_column(
                    name,
                    existing_type=sa.Text(),
                    type_=old_type,
                    existing_nullable=nullable,
                    postgresql_using=f"{name}::{'date' if name == 'birth_date' else 'varchar'}",
                )
