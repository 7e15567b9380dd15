"""Wrong: with no matching handler, fulfils the chained promise with None, so a rejection is
swallowed.
"""

# Exercise promise-then: write then() for a minimal promise class
class MyPromise(MiniPromise):
    """MiniPromise with then(): handlers run through the scheduler after settlement."""

    def then(
        self,
        on_fulfilled: Callable[[Any], Any] | None = None,
        on_rejected: Callable[[BaseException], Any] | None = None,
    ) -> "MyPromise":
        child = type(self)(self.scheduler)

        def settle_like(source: MiniPromise) -> None:
            if source.state == FULFILLED:
                child.fulfill(source.value)
            else:
                child.reject(source.error)

        def react() -> None:
            if self.state == FULFILLED:
                handler, argument = on_fulfilled, self.value
            else:
                handler, argument = on_rejected, self.error
            if handler is None:
                child.fulfill(self.value)
                return
            try:
                outcome = handler(argument)
            except Exception as error:
                child.reject(error)
                return
            if isinstance(outcome, MiniPromise):
                outcome.add_reaction(lambda: settle_like(outcome))  # adopt it
            else:
                child.fulfill(outcome)

        self.add_reaction(react)
        return child
