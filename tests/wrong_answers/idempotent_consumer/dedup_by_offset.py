"""Recognises duplicates by (partition, offset): a producer retry at a new offset applies twice."""

# json, StateFile and Delivery come from the lab's first code cell.
# ruff: noqa: F821


# Exercise idempotent-consumer: apply each transfer exactly once, despite redeliveries
def apply_transfer(store: StateFile, delivery: Delivery) -> None:
    state = store.load()
    position = f"{delivery.partition}/{delivery.offset}"
    if position in state["applied"]:
        return
    transfer = json.loads(delivery.value)
    balances = state["balances"]
    balances[transfer["from"]] -= transfer["amount"]
    balances[transfer["to"]] += transfer["amount"]
    state["applied"].append(position)
    store.save(state)
