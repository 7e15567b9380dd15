"""One networked task written in each asynchronous style.

The callback, future and promise modules perform the same two-step lookup
against the server in ``lookup``: ask for a user's account id, then ask for
the balance of that account, with a timeout on each step and a failure path.
Writing the same task several ways shows what each style makes easy and where
errors and cancellation travel. ``events`` and ``eventloop`` build the
machinery that the event style runs on.

- ``lookup``: the lookup server on loopback and a plain blocking client,
  which is the baseline the other styles are compared with. Its JSON wire
  format is in ``lookup_wire``.
- ``callbacks``: the task written with nested success and error callbacks
  that run on a background I/O thread.
- ``futures``: the task with ``concurrent.futures`` (executor, done
  callbacks, ``wait``, ``as_completed``); ``futures_asyncio`` writes it with
  ``asyncio`` (tasks, ``asyncio.timeout``, ``TaskGroup``).
- ``promise``: a thread-safe ``Promise`` with ``then``, ``catch`` and
  ``finally_`` chaining. Its handlers run on the thread of a ``dispatcher``,
  ``combinators`` holds ``all``, ``all_settled``, ``race`` and ``any``, and
  ``promises_task`` writes the lookup task as a promise chain.
- ``events``: an ``EventEmitter`` in the style of Node.js, with the special
  ``"error"`` event and a listener-leak warning.
- ``eventloop``: an event loop built on ``selectors``, with timers
  (``eventloop_handles``), a thread-safe wake-up, and a non-blocking framed
  echo server and client (``eventloop_echo`` on top of ``eventloop_stream``),
  which shows what ``asyncio`` does underneath.
- ``bridges``: converters between a ``Promise``, an ``asyncio.Future`` and a
  ``concurrent.futures.Future`` that carry results, errors and cancellation.
- ``measure``: the per-operation cost of each style, used by a lab.

Import the modules directly, for example
``from msgpass.styles.eventloop import EventLoop``. This package imports none of
them, so importing one style does not load the others.
"""
