"""Wrong: attaches on_value with then() and on_error with a separate catch(), leaving each
rejected then() promise unhandled.
"""

# Exercise promise-all-fail-fast: combine promises, values in input order, fail-fast
def promise_all(promises: list[Promise]) -> Promise:
    """Fulfil with every value in input order, or reject with the first rejection."""
    result, resolve, reject = Promise.with_resolvers()
    if not promises:
        resolve([])
        return result
    values: list[Any] = [None] * len(promises)
    remaining = len(promises)
    failed = False
    lock = threading.Lock()  # handlers of different inputs may run on different threads

    def on_value(index: int, value: Any) -> None:
        nonlocal remaining
        with lock:
            values[index] = value
            remaining -= 1
            complete = remaining == 0
        if complete:
            resolve(list(values))

    def on_error(error: BaseException) -> None:
        nonlocal failed
        with lock:
            first, failed = not failed, True
        if first:
            reject(error)

    for index, promise in enumerate(promises):
        # The mistake: then() without on_rejected makes a new promise that rejects unhandled.
        promise.then(functools.partial(on_value, index))
        promise.catch(on_error)
    return result
