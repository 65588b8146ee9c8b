"""Background loops' shared ending: a loop told to stop finishes the round it is in."""

from __future__ import annotations

import asyncio
import contextlib

__all__ = ["finish_round"]

#: How long a loop's round in progress may take to finish once the loop is told to stop.
GRACE_SECONDS = 10.0


async def finish_round(task: asyncio.Task[None], grace: float = GRACE_SECONDS) -> None:
    """Wait for ``task``, a loop already told to stop, to finish its round, for up to ``grace``
    seconds; then cancel it. Cancelling mid-round would strand its database connection (and
    perhaps a request half sent), so it is the last resort."""
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=grace)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
