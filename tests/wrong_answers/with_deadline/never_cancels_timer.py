"""Wrong: never cancels the timer when the input settles first."""

# Exercise with-deadline: settle like a promise, or reject with MessagingTimeout at a deadline
def with_deadline(promise: Promise, timeout_s: float, call_later: Callable[..., Any]) -> Promise:
    """Return a promise that settles like `promise`, or rejects after `timeout_s` seconds."""
    result, resolve, reject = Promise.with_resolvers()

    def on_deadline() -> None:
        reject(MessagingTimeout(f"no outcome within the deadline of {timeout_s} s"))

    call_later(timeout_s, on_deadline)  # the mistake: the handle is dropped, never cancelled

    def on_value(value: Any) -> None:
        resolve(value)  # ignored if the deadline came first

    def on_error(error: BaseException) -> None:
        reject(error)  # ignored (and logged as a warning) if the deadline came first

    promise.then(on_value, on_error)
    return result
