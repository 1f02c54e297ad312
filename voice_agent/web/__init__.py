"""HTTP and websocket entry points."""
