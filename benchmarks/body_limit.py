"""Memory of `voice-agent serve` under a 256 MiB /api/chat body, declared and streamed (chunked).

    python benchmarks/body_limit.py

Before the body limit the app parsed the whole body before the access check (+512 MB); now both
are refused with 413 before parsing and the app's RSS stays where it was.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import httpx

PORT = 18777
SIZE_MB = 256


def rss_mb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) // 1024
    return -1


def chunks() -> Iterator[bytes]:
    for _ in range(SIZE_MB):
        yield b"x" * (1024 * 1024)


def post(body: bytes | Iterator[bytes]) -> str:
    try:
        response = httpx.post(
            f"http://127.0.0.1:{PORT}/api/chat",
            content=body,
            headers={"content-type": "application/json"},
            timeout=60,
        )
        return str(response.status_code)
    except httpx.HTTPError as exc:  # the server may close before the client finished sending
        return type(exc).__name__


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "VOICE_AGENT_DATABASE_URL": f"sqlite:///{folder}/bench.db",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        command = [sys.executable, "-m", "voice_agent", "serve", "--port", str(PORT)]
        app = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder
        )
        try:
            for _ in range(100):
                try:
                    httpx.get(f"http://127.0.0.1:{PORT}/health", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            before = rss_mb(app.pid)
            declared = post(b"x" * (SIZE_MB * 1024 * 1024))
            after_declared = rss_mb(app.pid)
            streamed = post(chunks())
            after_streamed = rss_mb(app.pid)
            print(
                f"RSS {before} MB; {SIZE_MB} MiB declared -> {declared}, RSS {after_declared} MB; "
                f"{SIZE_MB} MiB streamed -> {streamed}, RSS {after_streamed} MB"
            )
        finally:
            app.terminate()
            app.wait(10)


if __name__ == "__main__":
    main()
