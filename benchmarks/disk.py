#!/usr/bin/env python3
"""The disk a launcher job keeps: the bytes (allocated blocks) of its run folder, its local
output_dir and, if asked, the state dir's caches, each inode once, so that a file hard linked
into several of them counts once (`cnvkit_nf.launch.runner.disk_bytes`).

    python benchmarks/disk.py STATE_DIR INSTANCE_ID [OUTPUT_DIR] [--caches]

prints `disk per job: N bytes (run folder A, output_dir B, caches C)`: A, B and C are each
folder alone, N the union (less than their sum when they share files).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnvkit_nf.launch.runner import disk_bytes  # noqa: E402
from cnvkit_nf.state.layout import StateDir  # noqa: E402


def job_disk_bytes(state_dir: Path, instance_id: str, output_dir: Path | None = None,
                   caches: bool = False) -> dict[str, int]:
    """The bytes a job keeps on disk: "run_folder", "output_dir", "caches" (the state dir's
    kept references, accessible regions, staged objects and private inputs; 0 unless
    `caches`), each alone, and "total", their union with every inode once."""
    state = StateDir(Path(state_dir))
    parts = {"run_folder": [state.run(instance_id).path],
             "output_dir": [Path(output_dir)] if output_dir else [],
             "caches": [state.references, state.access, state.staging_cache,
                        state.input_store.path] if caches else []}
    sizes = {name: disk_bytes(paths) for name, paths in parts.items()}
    return {**sizes, "total": disk_bytes([p for paths in parts.values() for p in paths])}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("instance_id")
    parser.add_argument("output_dir", type=Path, nargs="?")
    parser.add_argument("--caches", action="store_true", help="count the state dir's caches")
    args = parser.parse_args(argv)
    found = job_disk_bytes(args.state_dir, args.instance_id, args.output_dir, args.caches)
    print(f"disk per job: {found['total']} bytes (run folder {found['run_folder']}, "
          f"output_dir {found['output_dir']}, caches {found['caches']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
