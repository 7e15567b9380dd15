"""Treats every redelivery as a duplicate, so a record whose first try crashed is never applied."""

# json, StateFile and Delivery come from the lab's first code cell.
# ruff: noqa: F821


# Exercise idempotent-consumer: apply each transfer exactly once, despite redeliveries
def apply_transfer(store: StateFile, delivery: Delivery) -> None:
    if delivery.deliveries > 1:
        return
    state = store.load()
    transfer = json.loads(delivery.value)
    if transfer["id"] in state["applied"]:
        return
    balances = state["balances"]
    balances[transfer["from"]] -= transfer["amount"]
    balances[transfer["to"]] += transfer["amount"]
    state["applied"].append(transfer["id"])
    store.save(state)
