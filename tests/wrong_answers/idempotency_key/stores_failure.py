"""Reserves the key before apply() runs and keeps it if apply() fails, so a retry never applies."""

# threading and Json come from the lab's first code cell.
# ruff: noqa: F821


# Exercise idempotency-key: apply each idempotency key once and return its stored reply
class IdempotentHandler:
    def __init__(self, apply: Callable[[Json], Json]) -> None:
        self.apply = apply
        self.lock = threading.Lock()
        self.stored: dict[str, tuple[Json, Json]] = {}

    def handle(self, key: str, body: Json) -> Json:
        with self.lock:
            if key in self.stored:
                stored_body, reply = self.stored[key]
                if stored_body != body:
                    raise ValueError(f"idempotency key {key!r} was used for another request")
                return reply
            self.stored[key] = (body, {"error": "in progress"})
            reply = self.apply(body)
            self.stored[key] = (body, reply)
            return reply
