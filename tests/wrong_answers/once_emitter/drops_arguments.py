"""Call fn() without the emitted arguments."""

from collections.abc import Callable


class MiniEmitter:
    """A minimal event emitter: listeners run in registration order on the emitting thread."""

    def __init__(self) -> None:
        self.listeners: dict[str, list[Callable[..., object]]] = {}

    def on(self, event: str, fn: Callable[..., object]) -> None:
        self.listeners.setdefault(event, []).append(fn)

    def off(self, event: str, fn: Callable[..., object]) -> bool:
        registered = self.listeners.get(event, [])
        for index in range(len(registered) - 1, -1, -1):
            candidate = registered[index]
            if candidate == fn or getattr(candidate, "listener", None) == fn:
                del registered[index]
                return True
        return False

    def emit(self, event: str, *args: object) -> bool:
        snapshot = list(self.listeners.get(event, []))
        for fn in snapshot:
            fn(*args)
        return bool(snapshot)

    def once(self, event: str, fn: Callable[..., object]) -> None:
        def wrapper(*args: object) -> None:
            self.off(event, wrapper)
            fn()

        wrapper.listener = fn  # type: ignore[attr-defined]
        self.on(event, wrapper)
