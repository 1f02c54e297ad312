"""Prometheus metrics (``prometheus-client``, the reference client) served at ``/metrics``.

Counters and histograms are process-wide (one process, one scrape target); the outbox gauges are
read from the database at scrape time, so every process reports the shared backlog.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

CALLS_IN_PROGRESS = Gauge(
    "voice_agent_calls_in_progress", "Phone calls bridged to the receptionist right now."
)
TURNS = Counter("voice_agent_turns_total", "Conversation turns answered.", ["channel", "engine"])
TOOL_SECONDS = Histogram(
    "voice_agent_tool_seconds",
    "Tool call latency, by tool and outcome.",
    ["tool", "ok"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
)
OUTBOX_ROWS = Gauge(
    "voice_agent_outbox_rows",
    "Outbox rows by status: pending (backlog), failed (pending with an error), dead letters.",
    ["status"],
)
ALERTS_SENT = Counter(
    "voice_agent_alerts_sent_total", "Alerts delivered to the staff, by kind.", ["kind"]
)
