"""Benchmark: latency of the job service's submit and query calls.

1. Submission: a service at concurrency 1 runs a real job on a generated cohort; meanwhile
   50 clients poll its status at once (seed API and WES alternately) for 20 s, then 1,000
   valid requests are POSTed one after another (each is validated, its BAMs' headers
   checked, and queued behind the running job), all queued jobs are listed a page of 100 at a
   time on both faces, and all are cancelled.
2. Query: 10 000 job records in the store; the query API is called 200 times for each of a
   first page, a deep page, one instance-id and a time window.
Reports p50/p99 in milliseconds. A measurement, not a test.
Usage: .venv/bin/python benchmarks/bench_service.py [--posts 1000] [--pollers 50]
       [--records 10000]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnvkit_nf.state.jobs import JobStore  # noqa: E402
from cnvkit_nf.state.layout import StateDir  # noqa: E402
from scaffold.demo import demo_request  # noqa: E402
from scaffold.local_service import LocalService  # noqa: E402
from scaffold.simulate import seed_like_cohort  # noqa: E402

TOKEN = "bench-token-0123456789"
JOBS = "/v2.0/bench/gene/tools/cnvkit"
WES = "/ga4gh/wes/v1"
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


def poll(service: LocalService, instance_id: str, clients: int, seconds: float) -> None:
    """`clients` threads, each on its own keep-alive connection, ask for a job's state as
    fast as they are answered (seed API and WES in turn) for `seconds`."""
    url = urlsplit(service.url)
    paths = [f"{JOBS}?instance-id={instance_id}", f"{WES}/runs/{instance_id}/status"]
    samples: list[float] = []
    errors: list[str] = []
    stop = time.monotonic() + seconds

    def client() -> None:
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
        number = 0
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                connection.request("GET", paths[number % 2], headers={"X-Auth-Token": TOKEN})
                answer = connection.getresponse()
                answer.read()
                if answer.status != 200:
                    errors.append(str(answer.status))
            except OSError as err:
                errors.append(type(err).__name__)
                connection.close()
                connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
            samples.append(time.perf_counter() - started)
            number += 1
        connection.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(f"{clients} pollers while a job runs: {percentiles(samples)}, "
          f"{len(samples) / seconds:.0f} answers/s, {len(errors)} errors {sorted(set(errors))}")


def page_all(service: LocalService, total: int) -> None:
    """List every job a page of 100 at a time, on each face; the time for all pages."""
    started = time.perf_counter()
    seen = 0
    for offset in range(0, total, 100):
        seen += len(timed(service, "GET", f"{JOBS}?limit=100&offset={offset}")[1]["instances"])
    seed_face = time.perf_counter() - started
    started, token, runs = time.perf_counter(), "", 0
    while True:
        page = timed(service, "GET", f"{WES}/runs?page_size=100&page_token={token}")[1]
        runs += len(page["runs"])
        token = page["next_page_token"]
        if not token:
            break
    print(f"list {seen} jobs by pages of 100: seed API {seed_face * 1000:.0f} ms, "
          f"WES ({runs} runs) {(time.perf_counter() - started) * 1000:.0f} ms")


def bench_submit(tmp: Path, posts: int, pollers: int) -> None:
    cohort = seed_like_cohort(tmp / "data" / "bench" / "cohort", reads_per_sample=300_000,
                              seed=2)
    service = LocalService(tmp / "submit-state", write_config(tmp)).start()
    try:
        data, out = cohort.ref.parent, tmp / "data" / "bench" / "out"
        _, first = timed(service, "POST", JOBS, demo_request(data, out / "run"))
        time.sleep(5)  # the job is under way
        poll(service, first["instance_id"], pollers, 20)
        samples, ids = [], []
        for i in range(posts):
            elapsed, answer = timed(service, "POST", JOBS,
                                    demo_request(data, out / f"q{i}"))
            samples.append(elapsed)
            ids.append(answer["instance_id"])
        print(f"submit while a job runs: {percentiles(samples)}")
        page_all(service, posts + 1)
        cancels = []
        for instance_id in reversed([first["instance_id"], *ids]):  # the waiting ones first
            started = time.perf_counter()
            status, _ = service.call("DELETE", f"{JOBS}/{instance_id}", TOKEN)
            if status == 200:  # not those that ran to their end meanwhile
                cancels.append(time.perf_counter() - started)
        print(f"cancel a queued job:     {percentiles(cancels)}")
        while service.call("GET", "/health")[1]["running"]:  # the stopped runs have ended
            time.sleep(1)
    finally:
        service.stop()


def bench_query(tmp: Path, records: int) -> None:
    state = tmp / "query-state"
    store = JobStore(StateDir(state).jobs_db)
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
        "data_roots": [str(tmp / "data" / "{project}")],
        "limits": {"max_queued": 100_000}}))
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--pollers", type=int, default=50)
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_service-") as tmp:
        (Path(tmp) / "data" / "bench").mkdir(parents=True)
        bench_submit(Path(tmp), args.posts, args.pollers)
        bench_query(Path(tmp), args.records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
