"""Turn every TimeoutError into MessagingTimeout, including the operation's own."""

import asyncio

from msgpass.errors import MessagingTimeout


async def with_timeout(awaitable, timeout_s):
    try:
        async with asyncio.timeout(timeout_s):
            return await awaitable
    except TimeoutError as error:
        raise MessagingTimeout(f"no result within {timeout_s} s") from error
