"""Handle the timeout with asyncio.wait, but leave the task running if the wrapper is cancelled."""

import asyncio
import contextlib

from msgpass.errors import MessagingTimeout


async def with_timeout(awaitable, timeout_s):
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise MessagingTimeout(f"no result within {timeout_s} s")
    return task.result()
