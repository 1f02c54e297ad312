"""Key rotation: every encrypted value re-encrypted with the newest key, every phone hash
recomputed with the current look-up key.

Batched (one transaction per page) and resumable: a value already under the newest key is
skipped, so a run that stops half way is finished by running it again, and a second run
changes nothing. Old keys can leave ``VOICE_AGENT_ENCRYPTION_KEYS`` once a run reports no
value left on them.
"""

from __future__ import annotations

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy import Engine, MetaData
from sqlmodel import SQLModel

import voice_agent.store.tables  # noqa: F401  (registers every table on the metadata)
from voice_agent.crypto.binding import engine_keyring
from voice_agent.crypto.keys import ERASED_HASH_PREFIX
from voice_agent.store.encrypted_fields import BATCH_SIZE, encrypted_tables, rewrite


class RotationReport(BaseModel):
    values_reencrypted: dict[str, int] = {}
    rows_read: int = 0
    phone_hashes_updated: int = 0

    @property
    def total_reencrypted(self) -> int:
        return sum(self.values_reencrypted.values())


def rotate_keys(
    engine: Engine, *, batch_size: int = BATCH_SIZE, metadata: MetaData | None = None
) -> RotationReport:
    keyring = engine_keyring(engine)

    def reencrypt(token: str) -> str | None:
        return None if keyring.is_current(token) else keyring.rotate(token)

    report = RotationReport()
    for table in encrypted_tables(metadata or SQLModel.metadata):
        done = rewrite(engine, table, reencrypt, batch_size=batch_size)
        report.values_reencrypted[table.name] = done.values_changed
        report.rows_read += done.rows_read
    report.phone_hashes_updated = _rehash_phones(engine, batch_size)
    return report


def _rehash_phones(engine: Engine, batch_size: int) -> int:
    """After the look-up key changed: each patient's hash recomputed from its decrypted phone."""
    keyring = engine_keyring(engine)
    patient = sa.table("patient", sa.column("id"), sa.column("phone"), sa.column("phone_hash"))
    updated = 0
    last: str | None = None
    while True:
        query = sa.select(patient).order_by(patient.c.id).limit(batch_size)
        if last is not None:
            query = query.where(patient.c.id > last)
        with engine.begin() as db:
            page = db.execute(query).all()
            for patient_id, token, stored in page:
                if stored.startswith(ERASED_HASH_PREFIX):
                    continue
                fresh = keyring.lookup_hash(keyring.decrypt(token))
                if fresh != stored:
                    db.execute(
                        sa.update(patient)
                        .where(patient.c.id == patient_id)
                        .values(phone_hash=fresh)
                    )
                    updated += 1
        if not page:
            return updated
        last = page[-1][0]
