"""Real ``slotbot serve`` processes for scenarios that need several instances or a kill -9.

The emulators live in the test process, so they outlive the instances the tests kill.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServeProcess:
    """One ``python -m bot serve`` on a loopback port, its output in ``log``."""

    env: dict[str, str]
    log: Path
    port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    async def start(self, within: float = 20.0) -> None:
        """Start the process and wait until /healthz answers 200."""
        env = {
            **{k: v for k, v in os.environ.items() if "PROXY" not in k.upper()},
            **self.env,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
        }
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "serve", cwd=ROOT, env=env, stdout=log, stderr=log
            )
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.process.returncode is not None:
                    raise RuntimeError(f"slotbot serve exited: {self.log.read_text()[-2000:]}")
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/healthz") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"slotbot serve never became healthy: {self.log.read_text()[-2000:]}")

    async def kill(self) -> None:
        """kill -9: no cleanup, no goodbye, exactly as a crash."""
        if self.process and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    async def stop(self) -> None:
        if self.process and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                await self.kill()
