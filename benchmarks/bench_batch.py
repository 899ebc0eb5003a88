"""Benchmark: wall time of `cnvkit-nf run` against `cnvkit.py batch` on the same cohort.

Both run in turn (never concurrently) on one simulated cohort, with the seed request's option
strings on the pipeline side and their closest `cnvkit.py batch` equivalents on the other (see
benchmarks/README.md for what has no equivalent). The baseline is timed step by step:
`cnvkit.py access` (batch does not compute access for hybrid capture, the pipeline does),
`cnvkit.py batch`, then `genemetrics` per experimental sample and `sex`, which batch never runs.

With --warm, each repeat then times a second job of the same controls, FASTA, BED and options
on one tumour (the cohort's first), which reuses the reference the first job kept, against
`cnvkit.py batch TUMOUR.bam -r reference.cnn --scatter --diagram` plus genemetrics (batch's own
reference from the baseline).

A measurement, not a test: it never fails on timing, and exits 1 only when a command fails.
Usage: .venv/bin/python benchmarks/bench_batch.py [--samples 5] [--reads 3000000] [--warm]
       [--keep]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cnvkit_nf.launch import nextflow  # noqa: E402
from cnvkit_nf.state.layout import Results, RunFolder, StateDir  # noqa: E402
from scaffold.simulate import Cohort, SampleSpec, make_cohort, standard_samples  # noqa: E402

DATA = ROOT / "benchmarks" / ".data"
RESULTS = ROOT / "benchmarks" / "results" / "latest.json"
SEED_REQUEST = ROOT / "tests" / "data" / "seed_request.json"
LAUNCHER = ROOT / "bin" / "cnvkit-nf"
BIN = Path(sys.executable).parent
CNVKIT = str(BIN / "cnvkit.py")
CPUS = os.cpu_count() or 1
ENV = {
    **os.environ,
    "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    "NXF_OFFLINE": "true",
}
# The seed's options, as `cnvkit.py batch` spells them. `--target-avg-size 267` is the default
# split size of `cnvkit.py target` (200/0.75 bp, batch takes an int); without the two sizes batch
# would choose bin sizes from the BAM read counts (autobin), unlike `target`/`antitarget`.
BATCH_OPTIONS = (
    "--target-avg-size 267 --antitarget-avg-size 100000 -q 10 "
    "--segment-method cbs --drop-low-coverage"
).split()
# With -r, batch refuses the options that build a reference (the two bin sizes).
WARM_BATCH_OPTIONS = "-q 10 --segment-method cbs --drop-low-coverage --scatter --diagram".split()
GENEMETRICS_OPTIONS = "--drop-low-coverage -a 0.001 -b 150 --mean".split()
SEX_OPTIONS = ["-y"]
STEPS = ("access", "batch", "genemetrics", "sex")
UNITS = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MEGABYTES = {"B": 2**-20, "KB": 2**-10, "MB": 1.0, "GB": 2**10, "TB": 2**20}


def confs(processes: int) -> dict[str, str]:
    """The seed request's nine option strings, with coverage `-p` set to `processes` and
    segment given the same -p (batch's -p runs both coverage and segment in parallel)."""
    seed = json.loads(SEED_REQUEST.read_text())
    out = {k: " ".join(v.split()) for k, v in seed.items() if k.endswith("_conf")}
    out["coverage_conf"] = re.sub(r"-p \d+", f"-p {processes}", out["coverage_conf"])
    out["segment_conf"] = f"{out['segment_conf']} -p {processes}"
    return out


def cohort(samples: int, reads: int, seed: int) -> tuple[Cohort, float]:
    """The cached cohort (2 controls + experimental samples), generated on first use."""
    specs = standard_samples(n_experimental=samples - 2)
    folder = DATA / f"{samples}x{reads}-seed{seed}"
    stamp = folder / "cohort.json"
    if stamp.exists():
        bams = {s.name: folder / f"{s.name}.bam" for s in specs}
        files = (folder / n for n in ("reference.fa", "targets.bed", "annotation.gff3"))
        return Cohort(*files, bams, specs), json.loads(stamp.read_text())["generation_s"]
    print(f"generating {samples} samples x {reads:,} reads into {folder} ...", flush=True)
    start = time.perf_counter()
    made = make_cohort(folder, specs, reads_per_sample=reads, seed=seed)
    seconds = time.perf_counter() - start
    stamp.write_text(json.dumps({"generation_s": seconds}) + "\n")
    print(f"generated in {seconds:.1f} s", flush=True)
    return made, seconds


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy since boot (all cores, not idle/iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """CPU seconds of this process and its finished children."""
    return sum(
        r.ru_utime + r.ru_stime
        for r in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )


def wait_until_quiet(limit: float, threshold: float = 0.25) -> float:
    """Wait (at most `limit` s) until other processes use < `threshold` of a core for 5 s."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        busy = machine_busy()
        time.sleep(5)
        if machine_busy() - busy < 5 * threshold:
            break
    return time.perf_counter() - start


def timed(command: list, log: Path) -> dict:
    """Wall seconds, exit code and CPU seconds used meanwhile by other processes."""
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(map(str, command))}\n".encode())
        out.flush()
        busy, own, start = machine_busy(), own_cpu(), time.perf_counter()
        run = subprocess.run(
            [str(c) for c in command], stdout=out, stderr=subprocess.STDOUT, env=ENV
        )
        wall = time.perf_counter() - start
    cpu = own_cpu() - own
    other = max(0.0, machine_busy() - busy - cpu)
    return {"wall_s": wall, "cpu_s": cpu, "exit": run.returncode, "other_cpu_s": other}


def total(results: list[dict]) -> dict:
    return {
        "wall_s": sum(r["wall_s"] for r in results),
        "cpu_s": sum(r["cpu_s"] for r in results),
        "exit": max(r["exit"] for r in results),
        "other_cpu_s": sum(r["other_cpu_s"] for r in results),
    }


def run_pipeline(made: Cohort, options: dict[str, str], folder: Path, plots: bool = True,
                 tumours: list[Path] | None = None, state: Path | None = None) -> dict:
    """`cnvkit-nf run` on the cohort (or on `tumours` of it); wall time plus where the time
    went, from the trace. `plots=False` runs it with `params.plots = false` (no plots, no
    report.html); `state`: the state dir (its kept references), default one of its own."""
    folder.mkdir()
    output = folder / "output"
    state = state or folder / "state"
    request = {
        "experimental_inputs": [str(p) for p in tumours or made.experimental],
        "control_inputs": [str(p) for p in made.controls],
        "output_dir": str(output),
        "ref": str(made.ref),
        "bed": str(made.bed),
        "has_annotate": False,
        **options,
    }
    (folder / "request.json").write_text(json.dumps(request, indent=2) + "\n")
    started = time.time()
    # --keep-work: the critical path reads what each task staged from its .command.run
    command = [LAUNCHER, "--state-dir", state, "run", folder / "request.json", "--keep-work"]
    if not plots:
        (folder / "no-plots.config").write_text("params.plots = false\n")
        command += ["-c", folder / "no-plots.config"]
    result = timed(command, folder / "run.log")
    result["reused_reference"] = "reference reused" in (folder / "run.log").read_text()
    trace = Results(output).trace
    if trace.exists() and plots:
        result |= trace_summary(trace, started, started + result["wall_s"])
    if trace.exists() and plots and not tumours:
        runs = StateDir(folder / "state").runs
        params = next(run.params for run in map(RunFolder, runs.iterdir()) if run.params.exists())
        result |= startup_comparison(nextflow.ensure(log=print), params, folder / "startup")
    return result


def run_warm_baseline(made: Cohort, reference: Path, folder: Path) -> dict:
    """`batch TUMOUR -r reference.cnn --scatter --diagram`, then genemetrics: the tumour of a
    warm job, against a reference built before."""
    folder.mkdir()
    tumour = made.experimental[0]
    log, name = folder / "run.log", tumour.stem
    steps = {"batch": timed([CNVKIT, "batch", tumour, "-r", reference, *WARM_BATCH_OPTIONS,
                             "-p", CPUS, "--output-dir", folder], log)}
    steps["genemetrics"] = timed([CNVKIT, "genemetrics", folder / f"{name}.cnr", "-s",
                                  folder / f"{name}.cns", *GENEMETRICS_OPTIONS, "-o",
                                  folder / f"{name}.genemetrics.tsv"], log)
    return {"steps": steps, **total(list(steps.values()))}


def run_baseline(made: Cohort, folder: Path, options: list = BATCH_OPTIONS,
                 targets: Path | None = None) -> dict:
    """access, batch, genemetrics per experimental sample and sex, each timed on its own;
    batch with `options` and `--targets targets` (default: the cohort's BED)."""
    folder.mkdir()
    log, access = folder / "run.log", folder / "access.bed"
    experimental = [s.name for s in made.samples if not s.control]
    steps = {"access": timed([CNVKIT, "access", made.ref, "-o", access], log)}
    inputs = [*made.experimental, "--normal", *made.controls, "--targets", targets or made.bed]
    inputs += ["--fasta", made.ref, "--access", access, "-p", CPUS]
    outputs = ["--output-reference", folder / "reference.cnn", "--output-dir", folder]
    steps["batch"] = timed([CNVKIT, "batch", *inputs, *options, *outputs], log)
    steps["genemetrics"] = total(
        [
            timed(
                [CNVKIT, "genemetrics", folder / f"{n}.cnr", "-s", folder / f"{n}.cns"]
                + [*GENEMETRICS_OPTIONS, "-o", folder / f"{n}.genemetrics.tsv"],
                log,
            )
            for n in experimental
        ]
    )
    coverages = [folder / f"{s.name}.targetcoverage.cnn" for s in made.samples]
    ratios = [folder / f"{n}.cnr" for n in experimental]
    sex = [CNVKIT, "sex", *coverages, *ratios, *SEX_OPTIONS, "-o", folder / "sex.tsv"]
    steps["sex"] = timed(sex, log)
    return {"steps": steps, **total(list(steps.values()))}


def seconds(text: str) -> float:
    """Nextflow's human-readable durations (`1m 2s`, `350ms`) in seconds."""
    return sum(float(n) * UNITS[u] for n, u in re.findall(r"([\d.]+)\s*(ms|s|m|h|d)\b", text))


def megabytes(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)\s*([KMGT]?B)", text.strip())
    return float(match[1]) * MEGABYTES[match[2]] if match else 0.0


def epoch(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()


def trace_summary(trace: Path, started: float, ended: float) -> dict:
    """Per process: task count, summed realtime and CPU time, max peak RSS; plus run phases."""
    with open(trace, newline="") as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="\t") if r["status"] == "COMPLETED"]
    if not rows:
        return {}
    processes: dict[str, dict] = {}
    for row in rows:
        name = row["process"].rpartition(":")[2]
        p = processes.setdefault(name, {"tasks": 0, "realtime_s": 0.0, "cpu_s": 0.0, "rss_mb": 0.0})
        realtime = seconds(row["realtime"])
        p["tasks"] += 1
        p["realtime_s"] += realtime
        p["cpu_s"] += realtime * float(row["%cpu"].rstrip("%") or 0) / 100
        p["rss_mb"] = max(p["rss_mb"], megabytes(row["peak_rss"]))
    realtime = sum(p["realtime_s"] for p in processes.values())
    first = min(epoch(r["submit"]) for r in rows)
    last = max(epoch(r["complete"]) for r in rows)
    path_s, path = critical_path(rows)
    return {
        "tasks": len(rows),
        "cnvkit_interpreters": sum(1 for r in rows if r["process"].rpartition(":")[2]
                                   .startswith("CNVKIT_")),
        "critical_path_s": path_s,
        "critical_path": path,
        "task_realtime_s": realtime,
        "task_realtime_per_cpu_s": realtime / CPUS,
        "task_cpu_s": sum(p["cpu_s"] for p in processes.values()),
        "before_first_task_s": first - started,
        "task_span_s": last - first,
        "after_last_task_s": ended - last,
        "processes": dict(sorted(processes.items(), key=lambda kv: -kv[1]["realtime_s"])),
    }


def critical_path(rows: list[dict]) -> tuple[float, list[str]]:
    """The longest chain of task realtimes along what the tasks consumed (each task's
    .command.run links the outputs of the tasks it waited for): the wall time of the tasks
    with as many CPUs as there are tasks at once; and that chain's tasks."""
    tasks = {row["workdir"]: row for row in rows}
    inputs = {}
    for workdir in tasks:
        staged = Path(workdir, ".command.run").read_text()
        inputs[workdir] = {other for other in tasks if f"ln -s {other}/" in staged}
    chain: dict[str, tuple[float, list[str]]] = {}

    def longest(workdir: str) -> tuple[float, list[str]]:
        if workdir not in chain:
            before = max((longest(other) for other in inputs[workdir]), default=(0.0, []))
            row = tasks[workdir]
            name = f"{row['process'].rpartition(':')[2]} ({row['tag'] or '-'})"
            chain[workdir] = (before[0] + seconds(row["realtime"]), [*before[1], name])
        return chain[workdir]

    return max(longest(workdir) for workdir in tasks)


def first_task_s(command: list, trace: Path, cwd: Path) -> float:
    """Seconds from a `nextflow run` command's start to its first task's submission."""
    started = time.time()
    subprocess.run([str(c) for c in command], capture_output=True, env=ENV, cwd=cwd)
    with open(trace, newline="") as handle:
        return min(epoch(r["submit"]) for r in csv.DictReader(handle, delimiter="\t")) - started


def startup_comparison(nxf: str, params: Path, folder: Path, times: int = 3) -> dict:
    """Medians of seconds to the first task: a direct `nextflow run` of the launcher's params
    (a -stub run, whose first task, CHECK_INPUTS, starts as a real run's does) and a pipeline
    of one process; what the launcher adds is measured against the first."""
    folder.mkdir()
    direct = {**json.loads(params.read_text()), "inputs_checked": False,
              "output_dir": str(folder / "out")}
    (folder / "params.json").write_text(json.dumps(direct))
    (folder / "one.nf").write_text('process ONE {\n  output: stdout\n  script: "echo one"\n}\n'
                                   "workflow { ONE() }\n")
    runs: dict[str, list[float]] = {"direct_first_task_s": [], "one_process_first_task_s": []}
    for _ in range(times):
        for work in folder.glob("work*"):
            shutil.rmtree(work)
        for trace in (folder / "one.tsv", Results(folder / "out").trace):
            trace.unlink(missing_ok=True)
        runs["direct_first_task_s"].append(first_task_s(
            [nxf, "run", ROOT, "-params-file", "params.json", "-profile", "local", "-stub",
             "-work-dir", "work-direct"], Results(folder / "out").trace, folder))
        runs["one_process_first_task_s"].append(first_task_s(
            [nxf, "run", "one.nf", "-work-dir", "work-one", "-with-trace", "one.tsv"],
            folder / "one.tsv", folder))
    return {name: statistics.median(values) for name, values in runs.items()}


def dominant_cn(call_cns: Path, chrom: str, start: int, end: int) -> int | None:
    """The copy number covering most of `[start, end)` in a .call.cns file."""
    cover: dict[int, int] = {}
    with open(call_cns, newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            overlap = min(end, int(row["end"])) - max(start, int(row["start"]))
            if row["chromosome"] == chrom and overlap > 0:
                cover[int(row["cn"])] = cover.get(int(row["cn"]), 0) + overlap
    return max(cover, key=cover.__getitem__) if cover else None


def check_calls(samples: list[SampleSpec], pipeline_dir: Path, batch_dir: Path) -> list[dict]:
    """The called copy number of every planted event, in both runs' .call.cns files."""
    found = []
    for spec in samples:
        files = {
            "cnvkit-nf": pipeline_dir / "samples" / spec.name / f"{spec.name}.call.cns",
            "batch": batch_dir / f"{spec.name}.call.cns",
        }
        for e in spec.events:
            row = {
                "sample": spec.name,
                "event": f"{e.chrom}:{e.start}-{e.end}",
                "planted": e.copies,
            }
            for label, path in files.items():
                row[label] = dominant_cn(path, e.chrom, e.start, e.end) if path.exists() else None
            found.append(row)
    return found


def startup_seconds(command: list[str], times: int = 3) -> float:
    """Median wall time of a command that does next to nothing (its start-up cost)."""
    runs = []
    for _ in range(times):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, env=ENV)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def machine() -> dict:
    def first(path: str, key: str) -> str:
        lines = Path(path).read_text().splitlines()
        return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(key)), "")

    return {
        "cpu_count": CPUS,
        "cpu_model": first("/proc/cpuinfo", "model name"),
        "memory": first("/proc/meminfo", "MemTotal"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def summarise(runs: list[dict], startup: dict) -> dict:
    """Medians over the repeats of wall and CPU seconds, the two baselines and the ratios."""
    out: dict = {}
    for measure in ("wall_s", "cpu_s"):
        m = {"cnvkit_nf": statistics.median(r["cnvkit_nf"][measure] for r in runs)}
        for step in STEPS:
            m[step] = statistics.median(r["baseline"]["steps"][step][measure] for r in runs)
        m["baseline_1"] = m["access"] + m["batch"]
        m["baseline_2"] = m["baseline_1"] + m["genemetrics"] + m["sex"]
        m["ratio_1"] = m["cnvkit_nf"] / m["baseline_1"]
        m["ratio_2"] = m["cnvkit_nf"] / m["baseline_2"]
        if all("warm" in r for r in runs):
            m["warm"] = statistics.median(r["warm"][measure] for r in runs)
            m["warm_baseline"] = statistics.median(r["warm_baseline"][measure] for r in runs)
            m["warm_ratio_cold"] = m["warm"] / m["baseline_2"]
            m["warm_ratio_reuse"] = m["warm"] / m["warm_baseline"]
        if all("cnvkit_nf_no_plots" in r for r in runs):
            m["cnvkit_nf_no_plots"] = statistics.median(
                r["cnvkit_nf_no_plots"][measure] for r in runs)
            m["plots_cost"] = m["cnvkit_nf"] / m["cnvkit_nf_no_plots"] - 1
        out[measure] = m
    return out | startup


def report(summary: dict, run: dict) -> None:
    wall, cpu = summary["wall_s"], summary["cpu_s"]

    def line(label: str, *seconds: float) -> None:
        print(f"{label:<52}" + "".join(f"{s:>9.1f}" for s in seconds))

    print(f"\n{'median over repeats':<52}{'wall s':>9}{'CPU s':>9}")
    line("cnvkit-nf run", wall["cnvkit_nf"], cpu["cnvkit_nf"])
    for step in STEPS:
        line(f"cnvkit.py {step}", wall[step], cpu[step])
    line("baseline 1: access + batch", wall["baseline_1"], cpu["baseline_1"])
    line("baseline 2: access + batch + genemetrics + sex", wall["baseline_2"], cpu["baseline_2"])
    print(f"{'cnvkit-nf / baseline 1':<52}{wall['ratio_1']:>9.2f}{cpu['ratio_1']:>9.2f}")
    print(f"{'cnvkit-nf / baseline 2':<52}{wall['ratio_2']:>9.2f}{cpu['ratio_2']:>9.2f}")
    if "plots_cost" in wall:
        line("cnvkit-nf run, plots false", wall["cnvkit_nf_no_plots"], cpu["cnvkit_nf_no_plots"])
        print(f"{'what plots and report add (on / off - 1)':<52}{wall['plots_cost']:>9.1%}"
              f"{cpu['plots_cost']:>9.1%}")
    if "warm" in wall:
        line("warm: cnvkit-nf run, 1 tumour, reference reused", wall["warm"], cpu["warm"])
        line("  batch TUMOUR -r reference.cnn --scatter --diagram", wall["warm_baseline"],
             cpu["warm_baseline"])
        print(f"{'  warm / baseline 2 (the cold cohort; target <= 0.5)':<52}"
              f"{wall['warm_ratio_cold']:>9.2f}{cpu['warm_ratio_cold']:>9.2f}")
        print(f"{'  warm / batch -r + genemetrics (target <= 1.0)':<52}"
              f"{wall['warm_ratio_reuse']:>9.2f}{cpu['warm_ratio_reuse']:>9.2f}")
        warm = run["warm"]
        if "critical_path" in warm:
            print(f"  warm tasks: {warm['tasks']}; reused: {warm['reused_reference']}; critical "
                  f"path {warm['critical_path_s']:.1f} s: {' > '.join(warm['critical_path'])}")
    nf, base = run["cnvkit_nf"], run["baseline"]
    print(
        f"CPU s used by other processes during cnvkit-nf: {nf['other_cpu_s']:.1f}, "
        f"during the baseline: {base['other_cpu_s']:.1f}"
    )

    if "processes" in nf:
        print(f"\nwhere cnvkit-nf's {nf['wall_s']:.1f} s went (last repeat)")
        line("launcher, preflight, Nextflow start: to 1st task", nf["before_first_task_s"])
        if "direct_first_task_s" in nf:
            line("  direct `nextflow run` of its params: to 1st task", nf["direct_first_task_s"])
            line("  a one-process pipeline: to 1st task", nf["one_process_first_task_s"])
            line("  what the launcher adds", nf["before_first_task_s"] - nf["direct_first_task_s"])
        line("first task submitted to last task done", nf["task_span_s"])
        line("after the last task (publish, manifest, exit)", nf["after_last_task_s"])
        line(f"sum of task realtime ({nf['tasks']} tasks)", nf["task_realtime_s"])
        line("critical path (longest chain of task realtimes)", nf["critical_path_s"])
        print(f"  {' > '.join(nf['critical_path'])}")
        print(f"CNVkit interpreter starts: {nf['cnvkit_interpreters']} (one per stage task)")
        line(f"  / {CPUS} CPUs", nf["task_realtime_per_cpu_s"])
        line("CPU s of the tasks (realtime x %cpu)", nf["task_cpu_s"])
        line("CPU s of launcher, Nextflow, task wrappers (rest)", nf["cpu_s"] - nf["task_cpu_s"])
        line("`nextflow -version` (JVM start-up, median of 3)", summary["nextflow_version_s"])
        line("`cnvkit.py version` (Python + cnvlib import)", summary["cnvkit_import_s"])
        print("(every CNVkit task pays that import once; batch pays it once in all)")
        print(
            f"\n{'process':<20}{'tasks':>6}{'realtime s':>12}{'mean s':>9}{'CPU s':>8}{'RSS MB':>8}"
        )
        for name, p in nf["processes"].items():
            mean = p["realtime_s"] / p["tasks"]
            print(
                f"{name:<20}{p['tasks']:>6}{p['realtime_s']:>12.1f}{mean:>9.1f}"
                f"{p['cpu_s']:>8.1f}{p['rss_mb']:>8.0f}"
            )
    print("\nplanted events: copy number covering most of each event in .call.cns")
    for row in run["calls"]:
        found = []
        for k in ("cnvkit-nf", "batch"):
            cn = "missing" if row[k] is None else row[k]
            found.append(f"{k}={cn}{'' if row[k] == row['planted'] else ' (!)'}")
        print(
            f"  {row['sample']:<10}{row['event']:<24}planted {row['planted']}  {'  '.join(found)}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=5, help="2 controls + the rest experimental")
    parser.add_argument("--reads", type=int, default=3_000_000, help="reads per sample")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side, in turn")
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulated cohort")
    parser.add_argument("--keep", action="store_true", help="keep the outputs (path printed)")
    parser.add_argument(
        "--coverage-p",
        type=int,
        default=CPUS,
        help="-p of the pipeline's coverage_conf and segment_conf (at most the CPUs of each "
        "sample's coverage and segment; batch keeps -p = CPU count, which it spreads over "
        "samples)",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=600,
        help="before each side, wait up to this many seconds for other processes to go quiet",
    )
    parser.add_argument(
        "--warm",
        action="store_true",
        help="also time a second job on one tumour that reuses the first job's reference, "
        "against batch -r with that tumour",
    )
    parser.add_argument(
        "--plots-cost",
        action="store_true",
        help="also run cnvkit-nf with params.plots false, to measure what plots and report add",
    )
    args = parser.parse_args(argv)
    if args.samples < 3:
        parser.error("--samples must be at least 3 (2 controls + 1 experimental)")

    made, generation_s = cohort(args.samples, args.reads, args.seed)
    options = confs(args.coverage_p)
    nxf = nextflow.ensure(log=print)
    startup = {
        "nextflow_version_s": startup_seconds([nxf, "-version"]),
        "cnvkit_import_s": startup_seconds([CNVKIT, "version"]),
    }
    work = Path(tempfile.mkdtemp(prefix="bench_batch-"))
    runs = []
    for repeat in range(1, args.repeats + 1):
        folder = work / f"repeat{repeat}"
        folder.mkdir()
        run: dict = {}
        sides = [("cnvkit_nf", "cnvkit-nf run"), ("baseline", "cnvkit.py batch ...")]
        if args.plots_cost:
            sides.append(("cnvkit_nf_no_plots", "cnvkit-nf run, plots false"))
        if args.warm:
            sides += [("warm", "cnvkit-nf run, 1 tumour, reference kept by the first"),
                      ("warm_baseline", "cnvkit.py batch TUMOUR -r reference.cnn ...")]
        for side, label in sides:
            waited = wait_until_quiet(args.max_wait)
            if waited > 6:
                print(f"  waited {waited:.0f} s for other processes to go quiet", flush=True)
            print(f"repeat {repeat}/{args.repeats}: {label}", end=" ", flush=True)
            if side == "cnvkit_nf":
                run[side] = run_pipeline(made, options, folder / "cnvkit-nf")
            elif side == "cnvkit_nf_no_plots":
                run[side] = run_pipeline(made, options, folder / "no-plots", plots=False)
            elif side == "warm":
                run[side] = run_pipeline(made, options, folder / "warm",
                                         tumours=made.experimental[:1],
                                         state=folder / "cnvkit-nf" / "state")
            elif side == "warm_baseline":
                run[side] = run_warm_baseline(made, folder / "batch" / "reference.cnn",
                                              folder / "warm-batch")
            else:
                run[side] = run_baseline(made, folder / "batch")
            run[side]["waited_s"] = waited
            print(f"{run[side]['wall_s']:.1f} s (exit {run[side]['exit']})", flush=True)
        specs = [s for s in made.samples if s.events]
        run["calls"] = check_calls(specs, folder / "cnvkit-nf" / "output", folder / "batch")
        runs.append(run)

    summary = summarise(runs, startup)
    report(summary, runs[-1])
    failed = any(r[side]["exit"] for r in runs for side in r if side != "calls")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    results = {
        "machine": machine(),
        "cohort": {
            "samples": {s.name: "control" if s.control else "experimental" for s in made.samples},
            "reads_per_sample": args.reads,
            "seed": args.seed,
            "folder": str(made.ref.parent),
            "generation_s": generation_s,
        },
        "request_options": options,
        "batch_options": BATCH_OPTIONS + ["-p", str(CPUS)],
        "repeats": args.repeats,
        "summary": summary,
        "runs": runs,
        "failed": failed,
    }
    return finish(RESULTS, results, work, failed, args.keep)


def finish(path: Path, figures: dict, work: Path, failed: bool, keep: bool) -> int:
    """Write the figures to `path`, keep or remove the outputs in `work`; the exit status."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"\nfigures written to {path.relative_to(ROOT)}")
    if failed:
        print(f"a command failed: see the run.log files under {work}", file=sys.stderr)
    elif keep:
        print(f"outputs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
