"""Probes and metrics for the platform: ``/healthz`` (the process answers), ``/readyz`` (the
database answers, its schema is at the migration head, the background scheduler runs) and
``/metrics`` (Prometheus text format)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from voice_agent.metrics import OUTBOX_ROWS
from voice_agent.services import Services
from voice_agent.store.migrate import current_revisions, head_revisions
from voice_agent.web.deps import ServicesDep

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _database_problem(services: Services) -> str | None:
    try:
        with services.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        current = current_revisions(services.engine)
    except Exception as error:  # any driver error: not ready
        return f"database unreachable ({type(error).__name__})"
    heads = head_revisions()
    if current != heads:
        return f"database schema at {sorted(current)}, code expects {sorted(heads)}"
    return None


@router.get("/readyz")
async def readyz(request: Request, services: ServicesDep) -> JSONResponse:
    checks: dict[str, str] = {}
    problem = await asyncio.to_thread(_database_problem, services)
    checks["database"] = problem or "ok"
    scheduler = getattr(request.app.state, "scheduler", None)
    checks["scheduler"] = "ok" if scheduler is not None and scheduler.running else "not running"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


@router.get("/metrics")
async def metrics(services: ServicesDep) -> Response:
    try:
        counts = await asyncio.to_thread(services.outbox.counts)
    except Exception:  # the database is down: the process metrics still answer
        counts = {}
    for status in ("pending", "failed", "dead"):
        if status in counts:
            OUTBOX_ROWS.labels(status).set(counts[status])
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
