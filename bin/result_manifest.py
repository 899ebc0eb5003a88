#!/usr/bin/env python3
"""The manifest: written last into a result folder, it lists every file with size and checksum.

A folder without `manifest.json` is incomplete (the job is running, failed or was cancelled); a
folder whose files do not match their manifest entries has been altered or half-copied.
`pipeline_info/` is not covered: Nextflow writes its logs there after the manifest.

The pipeline's last task writes the manifest of every run, whoever launched it:

    result_manifest.py --paths paths.txt --staged in --job job.json -o manifest.json

lists the files staged as `in/00001/NAME`, `in/00002/NAME`, ... under the result paths that
`paths.txt` gives, one per line in the same order; main.nf then places it, after every file.
The package (`cnvkit_nf.storage.manifest`) uses the same code to publish and verify result folders.
Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import stat
import sys
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

NAME = "manifest.json"
RUN_INFO = "pipeline_info/"  # Nextflow's logs and the run's versions: not covered
MAX_BYTES = 256 << 20  # of a manifest read to verify (one of a million files is 150 MB)


def hexdigest(path: Path, new=hashlib.sha256) -> str:
    """Hex digest of a file's content (SHA-256 unless another hash constructor is given)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, new).hexdigest()


def entry(path: Path, name: str) -> dict:
    """The manifest entry of the file at `path`, listed as `name`."""
    return {"path": name, "size": path.stat().st_size, "sha256": hexdigest(path)}


def covered(name: str) -> bool:
    """Whether a manifest vouches for the file at this relative path."""
    return name != NAME and not name.startswith(RUN_INFO)


def listing(folder: Path) -> list[dict]:
    """Every regular file under folder that a manifest covers: relative path, size, sha256;
    sorted. Links are neither followed nor listed."""
    return [entry(path, name) for path, name in _files(folder) if covered(name)]


def _files(folder: Path) -> list[tuple[Path, str]]:
    """The regular files under folder with their relative names, sorted; links not followed."""
    found = [Path(top, name) for top, _, names in os.walk(folder)
             for name in names if stat.S_ISREG(os.lstat(Path(top, name)).st_mode)]
    return sorted((path, path.relative_to(folder).as_posix()) for path in found)


def write(folder: Path, entries: list[dict] | None = None, **info) -> Path:
    """Write folder/manifest.json atomically (temp file, then rename) and return its path;
    `entries` are the folder's `listing` unless given."""
    body = {**info, "files": listing(folder) if entries is None else entries}
    tmp = folder / f".manifest.{uuid.uuid4().hex}"
    with open(tmp, "x") as handle:  # mode as the umask gives, like every other result file
        json.dump(body, handle, indent=2)
        handle.write("\n")
    target = folder / NAME
    os.replace(tmp, target)
    return target


class Interrupted(Exception):
    """A publication was stopped (its `stop` event set) before its manifest was sent."""


def publish(folder: Path, put: Callable[[Path, str], None], workers: int = 1,
            stop: threading.Event | None = None) -> int:
    """Send each file of a finished result folder through `put(path, relative_name)`, its
    manifest last, so that whoever sees the manifest sees a complete result; the file count.
    Once `stop` is set no file is sent any more: Interrupted (the caller rolls back)."""
    stop = stop or threading.Event()

    def send(path: Path, name: str) -> None:
        if stop.is_set():
            raise Interrupted(f"stopped before {name} was published")
        put(path, name)

    files = [(path, name) for path, name in _files(folder) if name != NAME]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(lambda item: send(*item), files))
    send(folder / NAME, NAME)
    return len(files) + 1


def verify(folder: Path) -> list[str]:
    """Problems of a result folder against its manifest; empty when complete and intact."""
    target = folder / NAME
    if not target.is_file():
        return [f"{target}: no manifest, the result is incomplete"]
    try:
        listed = _entries(target)
    except (OSError, ValueError) as err:
        return [f"{target}: not a valid manifest: {err}"]
    found = {item["path"]: item for item in listing(folder)}
    problems = [f"{path}: listed but missing" for path in sorted(listed.keys() - found.keys())]
    problems += [f"{path}: not in the manifest" for path in sorted(found.keys() - listed.keys())]
    problems += [
        f"{path}: size or checksum differs from the manifest"
        for path in sorted(listed.keys() & found.keys())
        if _identity(listed[path]) != _identity(found[path])
    ]
    return problems


def _entries(target: Path) -> dict[str, dict]:
    """A manifest's entries by path; ValueError says how it is malformed (it may be anything:
    the folder is not ours)."""
    with open(target, "rb") as handle:
        text = handle.read(MAX_BYTES + 1)
    if len(text) > MAX_BYTES:
        raise ValueError(f"it is larger than {MAX_BYTES} bytes")
    try:
        body = json.loads(text)
    except RecursionError:
        raise ValueError("its JSON is nested too deeply") from None
    except ValueError as err:  # not UTF-8, not JSON, a number of thousands of digits
        raise ValueError(f"it is not JSON ({err})") from None
    files = body.get("files") if isinstance(body, dict) else None
    if not isinstance(files, list):
        raise ValueError('it is not a JSON object with a "files" list')
    listed: dict[str, dict] = {}
    for number, item in enumerate(files):
        if not (isinstance(item, dict) and isinstance(item.get("path"), str)
                and type(item.get("size")) is int and isinstance(item.get("sha256"), str)):
            raise ValueError(f"files[{number}] is not an object of a path (a string), a size "
                             "(an integer) and a sha256 (a string)")
        if item["path"] in listed:
            raise ValueError(f"files[{number}] lists {item['path']} again")
        listed[item["path"]] = item
    return listed


def _identity(item: dict) -> tuple[int, str]:
    return item["size"], item["sha256"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Write the manifest of a run's result files.")
    parser.add_argument("--paths", required=True, help="the result path of each staged file")
    parser.add_argument("--staged", required=True, help="folder of NNNNN/NAME staged files")
    parser.add_argument("--job", required=True, help="job.json: the job and its request")
    parser.add_argument("-o", "--output", required=True)
    args = parser.parse_args(argv)
    names = Path(args.paths).read_text().split("\n")[:-1]
    staged = sorted(Path(args.staged).iterdir(), key=lambda folder: int(folder.name))
    if len(staged) != len(names) or len(set(names)) != len(names):
        parser.error(f"{len(staged)} staged files for {len(names)} result paths, which must "
                     "be one per file and all different")
    entries = sorted((entry(next(folder.iterdir()), name)
                      for folder, name in zip(staged, names, strict=True)),
                     key=lambda item: item["path"])
    job = json.loads(Path(args.job).read_text())["job"]
    body = {"instance_id": job.get("instance_id") or job.get("run_name"),
            "request": job.get("request"),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": entries}
    Path(args.output).write_text(json.dumps(body, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
