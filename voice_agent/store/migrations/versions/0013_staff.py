"""staff console: accounts, server-side sessions, failed login attempts

Revision ID: 0013_staff
Revises: 0012_relatives
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import voice_agent.store.types

revision: str = "0013_staff"
down_revision: str | None = "0012_relatives"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Staff mark attendance in the console; their actions and blocks are logged as interactions.
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TYPE appointmentstatus ADD VALUE IF NOT EXISTS 'attended'")
        op.execute("ALTER TYPE interactionkind ADD VALUE IF NOT EXISTS 'attendance'")
        op.execute("ALTER TYPE interactionkind ADD VALUE IF NOT EXISTS 'block'")
    op.create_table(
        "staff_account",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=256), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("doctor_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("language", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", voice_agent.store.types.UTCDateTime(), nullable=False),
        sa.Column("password_changed_at", voice_agent.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("staff_account", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_account_email"), ["email"], unique=True)

    op.create_table(
        "staff_session",
        sa.Column("token_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("staff_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", voice_agent.store.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", voice_agent.store.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["staff_id"], ["staff_account.id"]),
        sa.PrimaryKeyConstraint("token_hash"),
    )
    with op.batch_alter_table("staff_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_session_staff_id"), ["staff_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_staff_session_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "staff_login_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("at", voice_agent.store.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("staff_login_attempt", schema=None) as batch_op:
        batch_op.create_index("ix_staff_login_attempt_key_at", ["key", "at"], unique=False)


def downgrade() -> None:
    op.drop_table("staff_login_attempt")
    op.drop_table("staff_session")
    op.drop_table("staff_account")
