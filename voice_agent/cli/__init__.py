"""The `voice-agent` command line (see `root.py` for the commands, `context.py` for how each gets
its settings, services and clock)."""

from voice_agent.cli.context import CliRuntime
from voice_agent.cli.root import app, main

__all__ = ["CliRuntime", "app", "main"]
