"""Wrong: at the deadline rejects the input promise and returns a chain on it, settling a
promise it does not own.
"""

# Exercise with-deadline: settle like a promise, or reject with MessagingTimeout at a deadline
def with_deadline(promise: Promise, timeout_s: float, call_later: Callable[..., Any]) -> Promise:
    """Return a promise that settles like `promise`, or rejects after `timeout_s` seconds."""
    result, resolve, reject = Promise.with_resolvers()

    def on_deadline() -> None:
        promise.reject_with(MessagingTimeout(f"no outcome within the deadline of {timeout_s} s"))

    timer = call_later(timeout_s, on_deadline)

    def on_value(value: Any) -> None:
        timer.cancel()
        resolve(value)  # ignored if the deadline came first

    def on_error(error: BaseException) -> None:
        timer.cancel()
        reject(error)  # ignored (and logged as a warning) if the deadline came first

    promise.then(on_value, on_error)
    return result
