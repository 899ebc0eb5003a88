"""Benchmark: staging throughput of `storage.stage_in` against a plain boto3 download loop.

Starts a local SeaweedFS (127.0.0.1), uploads a generated cohort, then times, in turn: a
sequential `download_file` loop over the same objects, and `stage_in` into an empty cache
(parallel, verified, atomic), and `stage_in` again (cache hit). A measurement, not a test.
Usage: .venv/bin/python benchmarks/bench_staging.py [--samples 5] [--reads 3000000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnvkit_nf import storage  # noqa: E402
from cnvkit_nf.paths import parse_location  # noqa: E402
from cnvkit_nf.seaweed import S3Server  # noqa: E402
from cnvkit_nf.simulate import make_cohort, standard_samples  # noqa: E402

DATA = ROOT / "benchmarks" / ".data"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--reads", type=int, default=3_000_000)
    args = parser.parse_args(argv)
    folder = DATA / f"{args.samples}x{args.reads}-seed1"
    if not (folder / "Control_M.bam").exists():
        make_cohort(folder, standard_samples(n_experimental=args.samples - 2),
                    reads_per_sample=args.reads)
    # what a job stages: BAMs with their indexes, reference with its .fai, targets
    staged_suffixes = (".bam", ".bai", ".fa", ".fai", ".bed")
    files = sorted(p for p in folder.iterdir() if p.suffix in staged_suffixes)
    total_mb = sum(p.stat().st_size for p in files) / 2**20
    with tempfile.TemporaryDirectory(prefix="bench_staging-") as tmp:
        server = S3Server(Path(tmp) / "s3").start()
        try:
            s3 = server.client()
            s3.create_bucket(Bucket="bench")
            for path in files:
                s3.upload_file(str(path), "bench", f"cohort/{path.name}")
            os.environ.update(server.env())
            client = storage.client()
            started = time.perf_counter()
            for path in files:
                client.download_file("bench", f"cohort/{path.name}", str(Path(tmp) / path.name))
            plain = time.perf_counter() - started
            inputs = [(f"experimental_inputs[{i}]", parse_location(f"s3a://bench/cohort/{p.name}"))
                      for i, p in enumerate(f for f in files if f.suffix == ".bam")]
            inputs += [("ref", parse_location(f"s3a://bench/cohort/{p.name}"))
                       for p in files if p.suffix == ".fa"]
            inputs += [("bed", parse_location(f"s3a://bench/cohort/{p.name}"))
                       for p in files if p.suffix == ".bed"]
            cache, links = Path(tmp) / "cache", Path(tmp) / "links"
            started = time.perf_counter()
            _, fetched = storage.stage_in(client, inputs, cache, links)
            staged = time.perf_counter() - started
            started = time.perf_counter()
            _, again = storage.stage_in(client, inputs, cache, links)
            cached = time.perf_counter() - started
        finally:
            server.stop()
    print(f"{len(files)} objects, {total_mb:.0f} MB, local SeaweedFS, 2 cores")
    print(f"plain boto3 download_file loop   {plain:6.1f} s  {total_mb / plain:7.1f} MB/s")
    print(f"stage_in, empty cache ({fetched} fetched) {staged:6.1f} s  "
          f"{total_mb / staged:7.1f} MB/s")
    print(f"stage_in, cache hit ({again} fetched)    {cached:6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
