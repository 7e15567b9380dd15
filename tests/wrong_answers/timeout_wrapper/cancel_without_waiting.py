"""Cancel the task at the deadline but raise before its cleanup has run."""

import asyncio

from msgpass.errors import MessagingTimeout


async def with_timeout(awaitable, timeout_s):
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        task.cancel()  # the mistake: the task is not awaited, so it is still finishing
        raise MessagingTimeout(f"no result within {timeout_s} s")
    return task.result()
