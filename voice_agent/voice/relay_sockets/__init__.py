"""The two websockets of a call: Twilio (served by uvicorn) and OpenAI (through the SDK).

Two fast paths (``server.py``, ``client.py``) take over the plain text frames that make up
nearly all of a call's traffic and leave everything rare and delicate (handshakes, fragments,
close, errors) to the stock implementations; ``framing.py`` judges every frame at its header
so nothing unusual is ever buffered; ``asgi.py`` holds the write coalescing and the bridge's
view of the Twilio socket. :func:`uvicorn_websocket_options` and
:func:`realtime_websocket_options` pick the fast paths or the stock implementations
(``Settings.relay_fast_path``), with message size limits fitted to each peer. The modules
that subclass uvicorn's and websockets' internals are imported only when the fast path is on,
so with it off an upgrade that breaks them leaves calls slower, not broken.
"""

from __future__ import annotations

from typing import Any

from voice_agent.voice.relay_sockets.asgi import (
    RELAY_EXTENSION,
    AsgiTextSocket,
    CoalescingTransport,
)
from voice_agent.voice.relay_sockets.framing import client_text_frame, server_text_frame

__all__ = [
    "REALTIME_MAX_MESSAGE_BYTES",
    "RELAY_EXTENSION",
    "RELAY_WS_PROTOCOL",
    "STOCK_WS_PROTOCOL",
    "TWILIO_MAX_MESSAGE_BYTES",
    "AsgiTextSocket",
    "CoalescingTransport",
    "client_text_frame",
    "realtime_websocket_options",
    "server_text_frame",
    "uvicorn_websocket_options",
]

RELAY_WS_PROTOCOL = "voice_agent.voice.relay_sockets.server:RelayServerProtocol"
"""uvicorn's ``ws`` option for the fast path (``voice-agent serve`` and the e2e harness)."""

STOCK_WS_PROTOCOL = "websockets-sansio"
"""uvicorn's own protocol that :data:`RELAY_WS_PROTOCOL` extends (the fast path off)."""

TWILIO_MAX_MESSAGE_BYTES = 64 * 1024
"""Twilio's media stream frames are under 1 KB (20 ms of μ-law in base64 JSON; ``start`` with
its parameters a few hundred bytes): 64 KiB leaves a wide margin and bounds what one socket
can make the app buffer. The app serves no other websocket."""

REALTIME_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
"""OpenAI Realtime server events are larger (``session.updated`` echoes the instructions and
tool schemas; ``response.done`` carries whole transcripts), well under this."""


def uvicorn_websocket_options(fast_path: bool) -> dict[str, Any]:
    """uvicorn's websocket settings for the app: our protocol or the stock one it extends,
    the Twilio size limit, no permessage-deflate (μ-law audio does not compress)."""
    return {
        "ws": RELAY_WS_PROTOCOL if fast_path else STOCK_WS_PROTOCOL,
        "ws_max_size": TWILIO_MAX_MESSAGE_BYTES,
        "ws_per_message_deflate": False,
    }


def realtime_websocket_options(fast_path: bool) -> dict[str, Any]:
    """The OpenAI SDK's ``websocket_connection_options``: our connection class or the stock
    one, the Realtime size limit, no permessage-deflate."""
    options: dict[str, Any] = {"compression": None, "max_size": REALTIME_MAX_MESSAGE_BYTES}
    if fast_path:
        from voice_agent.voice.relay_sockets.client import RelayClientConnection

        options["create_connection"] = RelayClientConnection
    return options
