"""Call set_result without checking for cancellation: a late reply raises on the I/O thread."""

import concurrent.futures


def get_as_future(get, key):
    future = concurrent.futures.Future()
    get(key, future.set_result, future.set_exception)
    return future
