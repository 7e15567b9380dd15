"""Wrong: rejects only after every input has settled, so it is not fail-fast."""

# Exercise promise-all-fail-fast: combine promises, values in input order, fail-fast
def promise_all(promises: list[Promise]) -> Promise:
    """Fulfil with every value in input order, or reject with the first rejection."""
    result, resolve, reject = Promise.with_resolvers()
    if not promises:
        resolve([])
        return result
    values: list[Any] = [None] * len(promises)
    remaining = len(promises)
    lock = threading.Lock()  # handlers of different inputs may run on different threads

    def on_value(index: int, value: Any) -> None:
        nonlocal remaining
        with lock:
            values[index] = value
            remaining -= 1
            complete = remaining == 0
        if complete and not errors:
            resolve(list(values))
        elif complete:
            reject(errors[0])

    errors: list[BaseException] = []

    def on_error(error: BaseException) -> None:
        nonlocal remaining
        with lock:
            errors.append(error)
            remaining -= 1
            complete = remaining == 0
        if complete:
            reject(errors[0])

    for index, promise in enumerate(promises):
        # One then() with both handlers: every input's rejection is handled.
        promise.then(functools.partial(on_value, index), on_error)
    return result
