"""Catch CancelledError with the timeout, so cancelling the wrapper looks like a timeout."""

import asyncio

from msgpass.errors import MessagingTimeout


async def with_timeout(awaitable, timeout_s):
    timeout = asyncio.timeout(timeout_s)
    try:
        async with timeout:
            return await awaitable
    except TimeoutError as error:
        if not timeout.expired():
            raise
        raise MessagingTimeout(f"no result within {timeout_s} s") from error
    except asyncio.CancelledError as error:
        raise MessagingTimeout("the operation was cancelled") from error
