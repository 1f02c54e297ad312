"""The one tool layer: every channel (voice, text, offline) reaches the clinic through it."""

from voice_agent.tools.context import ToolContext
from voice_agent.tools.registry import ToolError, ToolRegistry, ToolResult

__all__ = ["ToolContext", "ToolError", "ToolRegistry", "ToolResult"]
