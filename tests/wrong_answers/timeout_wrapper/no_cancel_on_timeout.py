"""Stop waiting at the deadline but leave the operation running as a leaked task."""

import asyncio

from msgpass.errors import MessagingTimeout


async def with_timeout(awaitable, timeout_s):
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        raise MessagingTimeout(f"no result within {timeout_s} s")
    return task.result()
