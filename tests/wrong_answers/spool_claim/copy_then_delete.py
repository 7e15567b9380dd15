"""Copies the file into claimed/ and then deletes the original: two readers can both copy it."""

# os, shutil and Path come from the lab's first code cell.
# ruff: noqa: F821


# Exercise spool-claim: claim the oldest message of a spool by renaming it into claimed/<reader_id>/
def claim_one(spool_dir: Path, reader_id: str) -> Path | None:
    new_dir = spool_dir / "new"
    for name in sorted(os.listdir(new_dir)):
        target = spool_dir / "claimed" / reader_id / name
        try:
            shutil.copyfile(new_dir / name, target)
            os.remove(new_dir / name)
        except FileNotFoundError:
            continue
        return target
    return None
