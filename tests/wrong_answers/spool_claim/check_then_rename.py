"""Checks os.path.exists() before the rename, but the file can vanish between check and rename."""

# os and Path come from the lab's first code cell.
# ruff: noqa: F821


# Exercise spool-claim: claim the oldest message of a spool by renaming it into claimed/<reader_id>/
def claim_one(spool_dir: Path, reader_id: str) -> Path | None:
    new_dir = spool_dir / "new"
    for name in sorted(os.listdir(new_dir)):
        if os.path.exists(new_dir / name):
            target = spool_dir / "claimed" / reader_id / name
            os.rename(new_dir / name, target)
            return target
    return None
