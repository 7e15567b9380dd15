"""Dead-letters only when attempts exceed max_attempts, so a poison task gets one claim too many."""

# deque, Lease and Task come from the lab's first code cell.
# ruff: noqa: F821


# Exercise visibility-timeout: return expired leases to the queue, dead-lettering spent tasks
def requeue_expired(
    leases: dict[str, Lease],
    ready: deque[Task],
    dead_letters: list[Task],
    now: float,
    max_attempts: int,
) -> list[str]:
    expired = [task_id for task_id, lease in leases.items() if now >= lease.deadline]
    for task_id in expired:
        task = leases.pop(task_id).task
        if task.attempts > max_attempts:
            dead_letters.append(task)
        else:
            ready.append(task)
    return expired
