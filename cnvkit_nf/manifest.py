"""The manifest: written last into a result folder, it lists every file with size and checksum.

A folder without `manifest.json` is incomplete (the job is running, failed or was cancelled); a
folder whose files do not match their manifest entries has been altered or half-copied.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

NAME = "manifest.json"


def hexdigest(path: Path, new=hashlib.sha256) -> str:
    """Hex digest of a file's content (SHA-256 unless another hash constructor is given)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, new).hexdigest()


def listing(folder: Path) -> list[dict]:
    """Every file under folder except the manifest: relative path, size, sha256; sorted."""
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != NAME:
            entries.append({"path": rel, "size": path.stat().st_size, "sha256": hexdigest(path)})
    return entries


def write(folder: Path, **info) -> Path:
    """Write folder/manifest.json atomically (temp file, then rename) and return its path."""
    body = {**info, "files": listing(folder)}
    fd, tmp = tempfile.mkstemp(prefix=".manifest.", dir=folder)
    with os.fdopen(fd, "w") as handle:
        json.dump(body, handle, indent=2)
        handle.write("\n")
    target = folder / NAME
    os.replace(tmp, target)
    return target


def publish(folder: Path, put: Callable[[Path, str], None], workers: int = 1) -> int:
    """Send each file of a finished result folder through `put(path, relative_name)`, its
    manifest last, so that whoever sees the manifest sees a complete result; the file count."""
    files = [p for p in sorted(folder.rglob("*"))
             if p.is_file() and p.relative_to(folder).as_posix() != NAME]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda path: put(path, path.relative_to(folder).as_posix()), files))
    put(folder / NAME, NAME)
    return len(files) + 1


def copier(target: Path) -> Callable[[Path, str], None]:
    """A `put` for `publish` into a local folder: each file is copied under a temporary name
    beside its destination and renamed into place, so no reader sees a half-written file."""
    def put(path: Path, name: str) -> None:
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)

    return put


def remove(folder: Path) -> None:
    """Drop a previous manifest, so a folder being rewritten never looks complete."""
    (folder / NAME).unlink(missing_ok=True)


def verify(folder: Path) -> list[str]:
    """Problems of a result folder against its manifest; empty when complete and intact."""
    target = folder / NAME
    if not target.is_file():
        return [f"{target}: no manifest, the result is incomplete"]
    listed = {entry["path"]: entry for entry in json.loads(target.read_text())["files"]}
    found = {entry["path"]: entry for entry in listing(folder)}
    problems = [f"{path}: listed but missing" for path in sorted(listed.keys() - found.keys())]
    problems += [f"{path}: not in the manifest" for path in sorted(found.keys() - listed.keys())]
    problems += [
        f"{path}: size or checksum differs from the manifest"
        for path in sorted(listed.keys() & found.keys())
        if _identity(listed[path]) != _identity(found[path])
    ]
    return problems


def _identity(entry: dict) -> tuple[int, str]:
    return entry["size"], entry["sha256"]
