"""Saves the balances, then the applied id in a second save: a crash between them applies twice."""

# json, StateFile and Delivery come from the lab's first code cell.
# ruff: noqa: F821


# Exercise idempotent-consumer: apply each transfer exactly once, despite redeliveries
def apply_transfer(store: StateFile, delivery: Delivery) -> None:
    state = store.load()
    transfer = json.loads(delivery.value)
    if transfer["id"] in state["applied"]:
        return
    balances = state["balances"]
    balances[transfer["from"]] -= transfer["amount"]
    balances[transfer["to"]] += transfer["amount"]
    store.save(state)
    state["applied"].append(transfer["id"])
    store.save(state)
