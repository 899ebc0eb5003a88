"""The manifest: written last into a result folder, it lists every file with size and checksum.

A folder without `manifest.json` is incomplete (the job is running, failed or was cancelled); a
folder whose files do not match their manifest entries has been altered or half-copied.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

NAME = "manifest.json"


def hexdigest(path: Path, new=hashlib.sha256) -> str:
    """Hex digest of a file's content (SHA-256 unless another hash constructor is given)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, new).hexdigest()


def listing(folder: Path) -> list[dict]:
    """Every regular file under folder except the manifest: relative path, size, sha256;
    sorted. Links are neither followed nor listed."""
    entries = []
    for path in sorted(_files(folder)):
        rel = path.relative_to(folder).as_posix()
        if rel != NAME:
            entries.append({"path": rel, "size": path.stat().st_size, "sha256": hexdigest(path)})
    return entries


def _files(folder: Path) -> list[Path]:
    """The regular files under folder, links not followed."""
    return [Path(top, name) for top, _, names in os.walk(folder)
            for name in names if stat.S_ISREG(os.lstat(Path(top, name)).st_mode)]


def write(folder: Path, **info) -> Path:
    """Write folder/manifest.json atomically (temp file, then rename) and return its path."""
    body = {**info, "files": listing(folder)}
    tmp = folder / f".manifest.{uuid.uuid4().hex}"
    with open(tmp, "x") as handle:  # mode as the umask gives, like every other result file
        json.dump(body, handle, indent=2)
        handle.write("\n")
    target = folder / NAME
    os.replace(tmp, target)
    return target


def publish(folder: Path, put: Callable[[Path, str], None], workers: int = 1) -> int:
    """Send each file of a finished result folder through `put(path, relative_name)`, its
    manifest last, so that whoever sees the manifest sees a complete result; the file count."""
    files = [p for p in sorted(_files(folder)) if p.relative_to(folder).as_posix() != NAME]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda path: put(path, path.relative_to(folder).as_posix()), files))
    put(folder / NAME, NAME)
    return len(files) + 1


def verify(folder: Path) -> list[str]:
    """Problems of a result folder against its manifest; empty when complete and intact."""
    target = folder / NAME
    if not target.is_file():
        return [f"{target}: no manifest, the result is incomplete"]
    try:
        listed = {entry["path"]: entry for entry in json.loads(target.read_text())["files"]}
        for entry in listed.values():
            _identity(entry)
    except (OSError, ValueError, TypeError, KeyError) as err:
        return [f"{target}: not a valid manifest ({type(err).__name__}: {err})"]
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
