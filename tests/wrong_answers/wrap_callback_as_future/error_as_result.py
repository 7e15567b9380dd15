"""Settle the future with the exception object as its result, so result() returns an error."""

import concurrent.futures


def get_as_future(get, key):
    future = concurrent.futures.Future()
    get(key, future.set_result, future.set_result)
    return future
