"""Benchmark: latency of the job service's submit and query calls.

1. Submission: a service at concurrency 1 runs a real job on a generated cohort; meanwhile
   200 valid requests are POSTed one after another (each is validated, its BAMs' headers
   checked, and queued behind the running job); then all are cancelled.
2. Query: 10 000 job records in the store; the query API is called 200 times for each of a
   first page, a deep page, one instance-id and a time window.
Reports p50/p99 in milliseconds. A measurement, not a test.
Usage: .venv/bin/python benchmarks/bench_service.py [--posts 200] [--records 10000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnvkit_nf.jobs import JobStore  # noqa: E402
from scaffold.demo import demo_request  # noqa: E402
from scaffold.local_service import LocalService  # noqa: E402
from scaffold.simulate import seed_like_cohort  # noqa: E402

TOKEN = "bench-token-0123456789"
JOBS = "/v2.0/bench/gene/tools/cnvkit"
SEED = json.loads((ROOT / "tests" / "data" / "seed_request.json").read_text())


def percentiles(samples: list[float]) -> str:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return f"p50 {cuts[49] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms (n={len(samples)})"


def timed(service: LocalService, method: str, path: str, body=None) -> tuple[float, dict]:
    started = time.perf_counter()
    status, answer = service.call(method, path, TOKEN, body)
    elapsed = time.perf_counter() - started
    if status >= 300:
        raise SystemExit(f"{method} {path}: {status} {answer}")
    return elapsed, answer


def bench_submit(tmp: Path, posts: int) -> None:
    cohort = seed_like_cohort(tmp / "data" / "cohort", reads_per_sample=300_000, seed=2)
    service = LocalService(tmp / "submit-state", write_config(tmp)).start()
    try:
        data, out = cohort.ref.parent, tmp / "data" / "out"
        _, first = timed(service, "POST", JOBS, demo_request(data, out / "run"))
        samples, ids = [], []
        for i in range(posts):
            elapsed, answer = timed(service, "POST", JOBS,
                                    demo_request(data, out / f"q{i}"))
            samples.append(elapsed)
            ids.append(answer["instance_id"])
        print(f"submit while a job runs: {percentiles(samples)}")
        cancels = [timed(service, "DELETE", f"{JOBS}/{i}")[0] for i in ids]
        timed(service, "DELETE", f"{JOBS}/{first['instance_id']}")
        print(f"cancel a queued job:     {percentiles(cancels)}")
    finally:
        service.stop()


def bench_query(tmp: Path, records: int) -> None:
    state = tmp / "query-state"
    store = JobStore(state / "jobs.sqlite")
    started = time.perf_counter()
    ids = []
    for i in range(records):
        job = store.create({**SEED, "output_dir": f"s3a://genes/out/{i}"}, project="bench",
                           owner="bench", runner="service", tasks_total=21)
        store.start(job.instance_id, pid=1, attempts=1)
        store.progress(job.instance_id, 21, 21)
        store.finish(job.instance_id)
        ids.append((job.instance_id, job.created))
    print(f"{records} records written in {time.perf_counter() - started:.1f} s")
    service = LocalService(state, write_config(tmp)).start()
    middle = ids[records // 2][1]
    calls = {
        "first page (limit 10)": f"{JOBS}",
        "deep page (limit 100, offset 9000)": f"{JOBS}?limit=100&offset={records - 1000}",
        "one instance-id": f"{JOBS}?instance-id={ids[records // 3][0]}",
        "time window": f"{JOBS}?start={middle}&end={middle + 1000}&limit=100",
    }
    try:
        for name, path in calls.items():
            samples = [timed(service, "GET", path)[0] for _ in range(200)]
            print(f"query, {name}: {percentiles(samples)}")
    finally:
        service.stop()


def write_config(tmp: Path) -> Path:
    config = tmp / "service.json"
    config.write_text(json.dumps({
        "tokens": [{"token": TOKEN, "owner": "bench", "projects": ["bench"]}],
        "data_roots": [{"path": str(tmp / "data"), "writable": True}],
        "limits": {"max_queued": 100_000}}))
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_service-") as tmp:
        (Path(tmp) / "data").mkdir()
        bench_submit(Path(tmp), args.posts)
        bench_query(Path(tmp), args.records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
