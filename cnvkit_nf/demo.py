"""`make demo`: generate a seed-like cohort, run the seed-shaped request on it, show the calls."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from cnvkit_nf.simulate import seed_like_cohort

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


def calls(call_cns: Path) -> list[dict]:
    """The segments of a .call.cns whose copy number is not 2."""
    with open(call_cns, newline="") as handle:
        return [row for row in csv.DictReader(handle, delimiter="\t") if row["cn"] != "2"]


def main() -> int:
    data = DEMO / "data"
    if not (data / "Son_S2_ALL.sort.mkdup.bam").exists():
        print(f"generating the demo cohort in {data} ...", flush=True)
        cohort = seed_like_cohort(data, reads_per_sample=300_000)
        for spec in cohort.samples:
            for event in spec.events:
                print(f"  planted in {spec.name}: {event.chrom}:{event.start}-{event.end} "
                      f"copy number {event.copies}")
    output_dir = DEMO / "results"
    request_file = DEMO / "request.json"
    request_file.write_text(json.dumps(demo_request(data, output_dir), indent=2) + "\n")
    print(f"request: {request_file}", flush=True)
    run = subprocess.run([str(ROOT / "bin" / "cnvkit-nf"), "--state-dir", str(DEMO / "state"),
                          "run", str(request_file)])
    if run.returncode != 0:
        return run.returncode
    print(f"\nresults in {output_dir}")
    for call_cns in sorted(output_dir.glob("samples/*/*.call.cns")):
        print(f"copy-number calls of {call_cns.name.removesuffix('.call.cns')} (cn != 2):")
        for row in calls(call_cns):
            print(f"  {row['chromosome']}:{row['start']}-{row['end']}  cn={row['cn']}  "
                  f"log2={float(row['log2']):+.2f}  probes={row['probes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
