"""Applies every delivery it gets, so a redelivered record moves the money again."""

# json, StateFile and Delivery come from the lab's first code cell.
# ruff: noqa: F821


# Exercise idempotent-consumer: apply each transfer exactly once, despite redeliveries
def apply_transfer(store: StateFile, delivery: Delivery) -> None:
    state = store.load()
    transfer = json.loads(delivery.value)
    balances = state["balances"]
    balances[transfer["from"]] -= transfer["amount"]
    balances[transfer["to"]] += transfer["amount"]
    store.save(state)
