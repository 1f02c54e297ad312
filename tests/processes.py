"""App processes for the tests that race several OS processes on one database.

Each such process used to be spawned fresh and import the app on its own (about 2 s of CPU, a
dozen processes a run). They are forked instead from one fork server per test process, started
clean (no threads, no event loop, no open connections) after importing the app once; each child
still builds its own engine, pool and services, as an app worker in production does.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext

# Imported once by the fork server; a test module adds itself so its workers unpickle at once.
PRELOAD = ["tests.conftest", "voice_agent.services", "voice_agent.confirmations.runner"]


def app_processes(module: str) -> BaseContext:
    """The multiprocessing context whose processes fork from the preloaded server."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([*PRELOAD, module])  # type: ignore[attr-defined]
    return context
