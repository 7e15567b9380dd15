"""Renames into spool_dir/<reader_id>/, a level where recover() never looks, so a crash loses it."""

# os and Path come from the lab's first code cell.
# ruff: noqa: F821


# Exercise spool-claim: claim the oldest message of a spool by renaming it into claimed/<reader_id>/
def claim_one(spool_dir: Path, reader_id: str) -> Path | None:
    new_dir = spool_dir / "new"
    mine = spool_dir / reader_id
    mine.mkdir(exist_ok=True)
    for name in sorted(os.listdir(new_dir)):
        try:
            os.rename(new_dir / name, mine / name)
        except FileNotFoundError:
            continue
        return mine / name
    return None
