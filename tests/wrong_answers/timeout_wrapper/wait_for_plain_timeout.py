"""Use asyncio.wait_for and let its TimeoutError out instead of raising MessagingTimeout."""

import asyncio


async def with_timeout(awaitable, timeout_s):
    return await asyncio.wait_for(awaitable, timeout_s)
