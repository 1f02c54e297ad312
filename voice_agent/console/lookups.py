"""Small look-ups the to-do, calls and clinic pages share: staff e-mails by account id, and
times in the clinic's timezone."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import Engine, select
from sqlmodel import col

from voice_agent.store.db import transaction
from voice_agent.store.staff_tables import StaffAccount


def staff_emails(engine: Engine, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    with transaction(engine) as session:
        rows = session.execute(
            select(col(StaffAccount.id), col(StaffAccount.email)).where(
                col(StaffAccount.id).in_(wanted)
            )
        ).all()
    return {int(account_id): str(email) for account_id, email in rows}


def when(tz: tzinfo) -> Callable[[datetime | None], str]:
    """``2026-11-23 10:00`` in the clinic's time (the templates' ``when``)."""

    def format_time(moment: datetime | None) -> str:
        return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M") if moment else ""

    return format_time


def pretty(value: Any) -> str:
    """A tool's arguments or result, readable (accents and Cyrillic as they are)."""
    return json.dumps(value, ensure_ascii=False, indent=1, default=str)
