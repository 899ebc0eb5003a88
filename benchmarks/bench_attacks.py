"""Benchmark: how long another project waits for its queries while the job service is attacked.

One stub service (no job computes); project `victim` queries its jobs on a fresh connection
every 0.1 s while each attack runs, project `attacker` (a valid token) or nobody attacks:

    quiet          no attack: the baseline
    trickle        20 connections trickle POST bodies, a byte a second
    silent         1,000 connections that never send a byte, and 100 new ones a second
    slow checks    16 POSTs at once naming a gzip FASTA of 1 Gb that the input check reads whole
    hostile bodies 1 MiB requests of unknown fields (seed API) and a 1 MiB multipart part
                   header (WES), each answered (400) in the time printed

Reports the victim's p50, p99 and max in milliseconds and what the attackers were answered.
A measurement, not a test (the tests assert bounds: tests/service/test_http_server.py,
tests/service/test_service_faults.py). Usage: .venv/bin/python benchmarks/bench_attacks.py
"""

from __future__ import annotations

import gzip
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scaffold.demo import demo_request  # noqa: E402
from scaffold.local_service import LocalService  # noqa: E402
from scaffold.simulate import seed_like_cohort  # noqa: E402

ATTACKER, VICTIM = "attacker-token-0123456789", "victim-token-0123456789"
JOBS = "/v2.0/{}/gene/tools/cnvkit"


def victim_latencies(service: LocalService, seconds: float) -> list[float]:
    """The victim's query times, one every 0.1 s for `seconds`; non-200 answers count as
    failures (raised)."""
    taken, stop = [], time.monotonic() + seconds
    while not taken or time.monotonic() < stop:
        started = time.perf_counter()
        status, body = service.call("GET", JOBS.format("victim"), VICTIM)
        if status != 200:
            raise SystemExit(f"the victim's query was answered {status}: {body}")
        taken.append(time.perf_counter() - started)
        time.sleep(0.1)
    return taken


def report(name: str, taken: list[float], attackers: str = "") -> None:
    cuts = statistics.quantiles(taken, n=100, method="inclusive")
    print(f"{name:<15} victim p50 {cuts[49] * 1000:6.1f} ms  p99 {cuts[98] * 1000:7.1f} ms  "
          f"max {max(taken) * 1000:7.1f} ms (n={len(taken)})  {attackers}".rstrip())


def trickle(service: LocalService) -> None:
    host, port = _address(service)
    answers: Counter[str] = Counter()

    def one() -> None:
        with socket.create_connection((host, port), timeout=30) as sock:
            sock.sendall(f"POST {JOBS.format('attacker')} HTTP/1.1\r\nHost: x\r\nX-Auth-Token: "
                         f"{ATTACKER}\r\nContent-Length: 1000\r\n\r\n{{".encode())
            sock.settimeout(0.5)
            try:
                answers[sock.recv(64).split(b" ")[1].decode()] += 1
            except (TimeoutError, IndexError):
                answers["being read"] += 1
            try:
                for _ in range(12):
                    sock.send(b" ")
                    time.sleep(1)
            except OSError:
                pass

    threads = [threading.Thread(target=one) for _ in range(20)]
    for thread in threads:
        thread.start()
    taken = victim_latencies(service, 12)
    for thread in threads:
        thread.join()
    report("trickle", taken, f"attackers: {dict(answers)}")


def silent(service: LocalService) -> None:
    host, port = _address(service)
    sockets = [socket.create_connection((host, port)) for _ in range(1000)]
    taken, stop = [], time.monotonic() + 10
    try:
        while time.monotonic() < stop:
            sockets += [socket.create_connection((host, port)) for _ in range(10)]
            taken += victim_latencies(service, 0)
            time.sleep(0.1)
    finally:
        for sock in sockets:
            sock.close()
    report("silent", taken, f"{len(sockets)} silent connections opened")


def slow_checks(service: LocalService, cohort_dir: Path, slow_fasta: Path) -> None:
    def post(number: int) -> int:
        request = {**demo_request(cohort_dir, cohort_dir.parent / "out" / f"slow-{number}"),
                   "ref": str(slow_fasta)}
        return service.call("POST", JOBS.format("attacker"), ATTACKER, request)[0]

    with ThreadPoolExecutor(16) as pool:
        posts = pool.map(post, range(16))
        taken = victim_latencies(service, 15)
        answers = Counter(posts)
    report("slow checks", taken, f"attackers answered: {dict(answers)}")


def hostile_bodies(service: LocalService) -> None:
    unknown = json.dumps({f"field_{n:06d}": "x" for n in range(45_000)}).encode()[:1 << 20]
    unknown = unknown[:unknown.rfind(b",")] + b"}"
    started = time.perf_counter()
    status, _ = service.call("POST", JOBS.format("attacker"), ATTACKER, unknown)
    seed = time.perf_counter() - started
    boundary = "b0undary"
    form = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"tags\"; x=\""
            + "y" * ((1 << 20) - 200) + f"\"\r\n\r\n{{}}\r\n--{boundary}--\r\n").encode()
    started = time.perf_counter()
    wes, _ = service.call("POST", "/ga4gh/wes/v1/runs", ATTACKER, form,
                          {"Content-Type": f"multipart/form-data; boundary={boundary}",
                           "Authorization": f"Bearer {ATTACKER}"})
    print(f"hostile bodies  1 MiB of unknown fields: {status} in {seed * 1000:.0f} ms; "
          f"1 MiB WES part header: {wes} in {(time.perf_counter() - started) * 1000:.0f} ms")


def _address(service: LocalService) -> tuple[str, int]:
    url = urlsplit(service.url)
    return url.hostname, url.port


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench_attacks-") as tmp:
        base = Path(tmp)
        cohort = seed_like_cohort(base / "data" / "attacker" / "cohort",
                                  reads_per_sample=20_000, seed=4)
        (base / "data" / "victim").mkdir(parents=True)
        slow = base / "data" / "attacker" / "slow.fa.gz"
        with gzip.open(slow, "wb", compresslevel=1) as fasta:
            fasta.write(cohort.ref.read_bytes() + b">chrPad\n")
            block = (b"ACGT" * 25 + b"\n") * 10_000
            for _ in range(1_000):
                fasta.write(block)
        config = base / "service.json"
        config.write_text(json.dumps({
            "tokens": [{"token": ATTACKER, "owner": "a", "projects": ["attacker"]},
                       {"token": VICTIM, "owner": "v", "projects": ["victim"]}],
            "data_roots": [str(base / "data" / "{project}")]}))
        (base / "state").mkdir()
        service = LocalService(base / "state", config, "--stub").start()
        try:
            report("quiet", victim_latencies(service, 5))
            trickle(service)
            silent(service)
            slow_checks(service, cohort.ref.parent, slow)
            hostile_bodies(service)
        finally:
            service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
