"""`make demo`, `make demo-s3`, `make demo-service`: a seed-like cohort, the seed-shaped request
on it (run by the launcher, from object storage, or through the job service), its calls.
`make demo PROFILE=slurm` runs the launcher's tasks on a local Slurm cluster (scaffold/slurm.py)."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cnvkit_nf.pipeline_files import load_bin
from cnvkit_nf.state.jobs import FINAL_STATES
from scaffold.local_service import LocalService
from scaffold.seaweed import S3Server
from scaffold.simulate import seed_like_cohort
from scaffold.slurm import SlurmCluster

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "demo-output"
SEED = ROOT / "tests" / "data" / "seed_request.json"


def demo_request(data: Path, output_dir: Path) -> dict:
    """The seed's example request, byte for byte in its options, with local demo paths."""
    request = json.loads(SEED.read_text())
    request.update(
        experimental_inputs=[str(data / "Son_S2_ALL.sort.mkdup.bam")],
        control_inputs=[str(data / "Father_S5_ALL.sort.mkdup.bam"),
                        str(data / "Mather_S1_ALL.sort.mkdup.bam")],
        output_dir=f"{output_dir}/",
        ref=str(data / "hg38.filtered.fa"),
        bed=str(data / "tEXOME2_ext50.bed"),
        annotation_file=str(data / "gencode.v29.annotation.gff3"),
    )
    return request


def cohort_folder() -> Path:
    """The demo cohort, generated on first use."""
    data = DEMO / "data"
    if not (data / "Son_S2_ALL.sort.mkdup.bam").exists():
        print(f"generating the demo cohort in {data} ...", flush=True)
        cohort = seed_like_cohort(data, reads_per_sample=300_000)
        for spec in cohort.samples:
            for event in spec.events:
                print(f"  planted in {spec.name}: {event.chrom}:{event.start}-{event.end} "
                      f"copy number {event.copies}")
    return data


def print_calls(name: str, call_cns: Path) -> None:
    """A .call.cns's calls, and apart from them the copy numbers the sample's sex expects (the
    report's rule: bin/expected_states.py, with the demo request's call_conf)."""
    found = load_bin("expected_states").states(call_cns, json.loads(SEED.read_text())["call_conf"])
    print(f"copy-number calls of {name} ({found.sex}, ploidy {found.ploidy}): {len(found.calls)}")
    for title, rows in (("", found.calls), ("expected state, not a call: ", found.expected)):
        for row in rows:
            print(f"  {title}{row['chromosome']}:{row['start']}-{row['end']}  cn={row['cn']}  "
                  f"log2={float(row['log2']):+.2f}  probes={row['probes']}")


def print_results(output_dir: Path) -> None:
    """Where a local result folder is, and each sample's calls."""
    print(f"\nresults in {output_dir}")
    for call_cns in sorted(output_dir.glob("samples/*/*.call.cns")):
        print_calls(call_cns.name.removesuffix(".call.cns"), call_cns)
    if (output_dir / "report.html").is_file():
        print(f"report: {(output_dir / 'report.html').as_uri()} (open it in a browser)")


def main(profile: str = "local") -> int:
    """The launcher's run with a Nextflow profile; with `slurm`, on a local cluster started for
    the run and stopped after it."""
    data = cohort_folder()
    name = "" if profile == "local" else "-" + profile.replace(",", "-")
    output_dir = DEMO / f"results{name}"
    request_file = DEMO / f"request{name}.json"
    request_file.write_text(json.dumps(demo_request(data, output_dir), indent=2) + "\n")
    print(f"request: {request_file}", flush=True)
    command = [str(ROOT / "bin" / "cnvkit-nf"), "--state-dir", str(DEMO / f"state{name}"),
               "run", str(request_file), "--profile", profile]
    cluster = None
    if "slurm" in profile.split(","):
        cluster = SlurmCluster(DEMO / "slurm").start()
        print(f"Slurm cluster: {cluster.folder} (SLURM_CONF={cluster.conf})", flush=True)
        command += ["-c", str(cluster.nextflow_config)]
    try:
        run = subprocess.run(command, env={**os.environ, **(cluster.env() if cluster else {})})
        if cluster:
            jobs = cluster.completed_jobs()
            print(f"{len(jobs)} Slurm jobs, from its job completion log {cluster.jobcomp_log}:")
            for job_id, job in jobs.items():
                print(f"  {job_id}  {job['JobState']:<10} {job['Name']}")
    finally:
        if cluster:
            cluster.stop()
    if run.returncode != 0:
        return run.returncode
    print_results(output_dir)
    return 0


def main_s3() -> int:
    """The seed's request, unchanged, against a local S3 server holding the demo cohort."""
    data = cohort_folder()
    folder = DEMO / "s3"
    shutil.rmtree(folder, ignore_errors=True)
    server = S3Server(folder / "data").start()
    try:
        print(f"SeaweedFS S3 at {server.endpoint}; uploading the cohort to s3a://genes/cnvkit/")
        s3 = server.client()
        s3.create_bucket(Bucket="genes")
        for path in sorted(data.iterdir()):
            s3.upload_file(str(path), "genes", f"cnvkit/{path.name}")
        print(f"request: {SEED} (the seed's example, as written)", flush=True)
        run = subprocess.run([str(ROOT / "bin" / "cnvkit-nf"), "--state-dir",
                              str(DEMO / "state-s3"), "run", str(SEED)],
                             env={**os.environ, **server.env()})
        if run.returncode != 0:
            return run.returncode
        key = "cnvkit/output/samples/Son_S2_ALL/Son_S2_ALL.call.cns"
        print(f"\nresults in s3a://genes/cnvkit/output/ (server data: {folder})")
        with tempfile.TemporaryDirectory() as temp:
            s3.download_file("genes", key, f"{temp}/Son_S2_ALL.call.cns")
            print_calls("Son_S2_ALL", Path(temp) / "Son_S2_ALL.call.cns")
        print("report: s3a://genes/cnvkit/output/report.html")
    finally:
        server.stop()
    return 0


def main_service() -> int:
    """The same request submitted over HTTP to a job service on 127.0.0.1, with the client
    commands a user types."""
    data = cohort_folder()
    state = DEMO / "state-service"
    state.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    config = state / "service.json"
    # The cohort is shared and read-only; each project writes under its own folder.
    config.write_text(json.dumps({"tokens": [{"token": token, "owner": "demo",
                                              "projects": ["demo"]}],
                                  "data_roots": [str(data), str(DEMO / "service-{project}")]}))
    output_dir = DEMO / "service-demo" / "results"
    output_dir.parent.mkdir(exist_ok=True)
    request_file = DEMO / "request-service.json"
    request_file.write_text(json.dumps(demo_request(data, output_dir), indent=2) + "\n")
    service = LocalService(state, config).start()
    print(f"job service at {service.url} (log: {service.log})")
    client = {**os.environ, "CNVKIT_NF_TOKEN": token, "CNVKIT_NF_PROJECT": "demo"}
    cli = [str(ROOT / "bin" / "cnvkit-nf")]
    try:
        print(f"$ cnvkit-nf submit {request_file} --server {service.url}", flush=True)
        submitted = subprocess.run([*cli, "submit", str(request_file), "--server", service.url],
                                   env=client, capture_output=True, text=True)
        print(submitted.stdout + submitted.stderr, end="", flush=True)
        if submitted.returncode != 0:
            return submitted.returncode
        instance_id = submitted.stdout.split(": ", 1)[1].strip()
        shown = ""
        while True:
            status = subprocess.run([*cli, "status", instance_id, "--server", service.url,
                                     "--json"], env=client, capture_output=True, text=True)
            body = json.loads(status.stdout)
            if f"{body['status']} {body['progress']}" != shown:
                shown = f"{body['status']} {body['progress']}"
                print(f"  {shown} ({body['duration']} s)", flush=True)
            if body["status"] in FINAL_STATES:
                break
            time.sleep(2)
    finally:
        service.stop()
    if body["status"] != "FINISHED":
        print(f"message: {body['message']}")
        return 3
    print_results(output_dir)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    face = parser.add_mutually_exclusive_group()
    face.add_argument("--s3", action="store_true", help="the seed's request from a local S3")
    face.add_argument("--service", action="store_true", help="through a local job service")
    parser.add_argument("--profile", default="local",
                        help="Nextflow profile(s) of the launcher's run; slurm: on a local cluster")
    args = parser.parse_args()
    sys.exit(main_s3() if args.s3 else main_service() if args.service else main(args.profile))
