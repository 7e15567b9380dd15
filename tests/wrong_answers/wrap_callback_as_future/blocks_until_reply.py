"""Wait for the reply inside get_as_future, so the caller blocks as with a plain call."""

import concurrent.futures
import threading


def get_as_future(get, key):
    future = concurrent.futures.Future()
    replied = threading.Event()

    def on_success(value):
        future.set_result(value)
        replied.set()

    def on_error(error):
        future.set_exception(error)
        replied.set()

    get(key, on_success, on_error)
    replied.wait()  # the mistake: the future is already done when the caller gets it
    return future
