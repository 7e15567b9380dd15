"""Checks for the key and applies without a lock, so concurrent repeats both apply."""

# Json comes from the lab's first code cell.
# ruff: noqa: F821


# Exercise idempotency-key: apply each idempotency key once and return its stored reply
class IdempotentHandler:
    def __init__(self, apply: Callable[[Json], Json]) -> None:
        self.apply = apply
        self.stored: dict[str, tuple[Json, Json]] = {}

    def handle(self, key: str, body: Json) -> Json:
        if key in self.stored:
            stored_body, reply = self.stored[key]
            if stored_body != body:
                raise ValueError(f"idempotency key {key!r} was used for another request")
            return reply
        reply = self.apply(body)
        self.stored[key] = (body, reply)
        return reply
