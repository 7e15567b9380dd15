"""Wrong: waits for the inputs one after another, so a later input's rejection is seen late."""


def promise_all(promises: list[Promise]) -> Promise:
    """Fulfil with every value in input order, or reject with the first rejection."""
    values: list[Any] = []
    chain = Promise.resolve(None)
    for promise in promises:
        chain = chain.then(lambda _ignored, promise=promise: promise).then(values.append)
    return chain.then(lambda _ignored: values)
