"""The state dir's flocks (`layout.StateDir` names their files): the retention lock, which a job
holds shared while it stages inputs (`staging`) and a sweep of staged inputs holds exclusive
(`service.retention`), and the clean lock, which lets one clean run at a time.

Every flock file lies in the state dir, on the service host's local disk, also those guarding
what is in a work dir on a shared file system (staged inputs, kept references: their locks are
`StateDir.entry_locks`), where flock may not hold between hosts: local locks are enough, since
only this host's processes use the state dir (one `serve` at a time) and its work dir serves
no other state dir (`layout.open_state`)."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cnvkit_nf.state.layout import StateDir


@contextmanager
def staging(state_dir: Path) -> Iterator[None]:
    """Held by a job from the start of its staging until its run started (params.json
    written): the staged inputs it is about to use are not swept meanwhile."""
    with flock(StateDir(Path(state_dir)).retention_lock, fcntl.LOCK_SH):
        yield


@contextmanager
def flock(path: Path, mode: int, wait: float | None = None) -> Iterator[bool]:
    """Hold an flock on `path`, waiting for it (at most `wait` seconds): whether it is held."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = None if wait is None else time.monotonic() + wait
    with open(path, "a+") as handle:
        while True:
            try:
                fcntl.flock(handle, mode | (0 if deadline is None else fcntl.LOCK_NB))
                held = True
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    held = False
                    break
                time.sleep(0.1)
        yield held
