"""Promise style: the two-step lookup as a flat chain of ``then`` calls.

The callback version (``fetch_balance_callbacks``) starts step 2 inside step
1's success callback and hands the error callback down by hand. With
promises, each request returns a ``Promise`` at once, and ``then`` chains
the next step onto it. The handler of step 1 returns the promise of step 2,
and ``then`` adopts it, so the chain settles only when the balance arrives.
One rejection handler at the end, or one ``result`` call, receives an error from
either step.

Wrapping a callback request in a promise takes one line, because the
promise's ``resolve`` and ``reject`` functions are exactly the two callbacks
that ``CallbackClient.get`` wants. If ``get`` raises at once (the client is
closed), the ``Promise`` constructor rejects the promise with that error, so
it travels down the chain like any other failure.

Left out on purpose: cancelling a step in flight. ``Promise`` has no
cancellation (see ``msgpass.styles.bridges``).
"""

from __future__ import annotations

from .callbacks import CallbackClient
from .dispatcher import Dispatcher
from .lookup import balance_key, user_key
from .promise import Promise

__all__ = ["get_promise", "fetch_balance_promise"]


def get_promise(
    client: CallbackClient,
    key: str,
    *,
    timeout_s: float | None = None,
    dispatcher: Dispatcher | None = None,
) -> Promise[str]:
    """Request ``key`` on ``client`` and return a promise of its value.

    The promise rejects with ``RemoteError``, ``MessagingTimeout`` after
    ``timeout_s`` seconds (None uses the client's timeout), or whatever
    ``client.get`` raises. Its handlers run on ``dispatcher``, by default the
    shared one.
    """
    return Promise(
        lambda resolve, reject: client.get(key, resolve, reject, timeout_s=timeout_s),
        dispatcher=dispatcher,
    )


def fetch_balance_promise(
    client: CallbackClient,
    user: str,
    *,
    timeout_s: float | None = None,
    dispatcher: Dispatcher | None = None,
) -> Promise[str]:
    """Run the two-step task in promise style and return a promise of ``user``'s balance.

    Each step has its own ``timeout_s``. The promise rejects with the first
    error of either step, and step 2 never starts after step 1 fails::

        with CallbackClient(server.port) as client:
            fetch_balance_promise(client, "alice").result(timeout_s=1.0)  # "100"
    """

    def get(key: str) -> Promise[str]:
        return get_promise(client, key, timeout_s=timeout_s, dispatcher=dispatcher)

    return get(user_key(user)).then(lambda account_id: get(balance_key(account_id)))
