"""Claims the newest message first, so one writer's messages come out in reverse order."""

# os and Path come from the lab's first code cell.
# ruff: noqa: F821


# Exercise spool-claim: claim the oldest message of a spool by renaming it into claimed/<reader_id>/
def claim_one(spool_dir: Path, reader_id: str) -> Path | None:
    new_dir = spool_dir / "new"
    for name in sorted(os.listdir(new_dir), reverse=True):
        target = spool_dir / "claimed" / reader_id / name
        try:
            os.rename(new_dir / name, target)
        except FileNotFoundError:
            continue
        return target
    return None
