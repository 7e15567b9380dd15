"""One networked task written in each asynchronous style.

The callback, future and promise modules perform the same two-step lookup
against the server in ``lookup``: ask for a user's account id, then ask for
the balance of that account, with a timeout on each step and a failure path.
Writing the same task several ways shows what each style makes easy and where
errors and cancellation travel. ``events`` and ``eventloop`` build the
machinery that the event style runs on.

- ``lookup``: the lookup server on loopback, its JSON wire format and a plain
  blocking client, which is the baseline the other styles are compared with.
- ``callbacks``: the task written with nested success and error callbacks
  that run on a background I/O thread.
- ``futures``: the task with ``concurrent.futures`` (executor, done
  callbacks, ``wait``, ``as_completed``) and with ``asyncio`` (tasks,
  ``asyncio.wait_for``).
- ``promise``: a thread-safe ``Promise`` with ``then``, ``catch`` and
  ``finally_`` chaining and the ``all``, ``race`` and ``any`` combinators.
- ``events``: an ``EventEmitter`` in the style of Node.js, with the special
  ``"error"`` event and a listener-leak warning.
- ``eventloop``: an event loop built on ``selectors``, with timers, a
  thread-safe wake-up and a non-blocking framed echo server and client, which
  shows what ``asyncio`` does underneath. The echo service lives in
  ``eventloop_echo``.
- ``bridges``: converters between a ``Promise``, an ``asyncio.Future`` and a
  ``concurrent.futures.Future`` that carry results, errors and cancellation.

Import the modules directly, for example
``from msgpass.styles.eventloop import EventLoop``. This package imports none of
them, so importing one style does not load the others.
"""
