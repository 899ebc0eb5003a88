"""The `test` profile's inputs (conf/test.config): a small seed-shaped cohort with a fixed seed,
generated into test-data/ (git-ignored) by `make install`, so that `nextflow run . -profile
test,local` runs the real pipeline in under a minute. `python -m scaffold.test_data` writes it
anew; `ensure()` (the tests) only when it is missing or was made with other settings."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from scaffold.simulate import SampleSpec, seed_like_cohort, seed_like_samples

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "test-data"
STAMP = ".generated"
# The seed-like cohort's shape at a smaller size (6 MB in all: 3 BAMs of 1.4 MB, a 1.5 MB FASTA),
# generated in seconds; the seed request's options call its events right
# (tests/pipeline/test_profile_test.py).
READS, SEED, CHROM = 60_000, 3, 300_000
SETTINGS = f"seed_like_cohort reads={READS} seed={SEED} chrom_length={CHROM}\n"


def samples() -> list[SampleSpec]:
    """The cohort's samples and the events planted in them."""
    return seed_like_samples(CHROM)


def generate(folder: Path = FOLDER) -> Path:
    """Write the cohort into `folder` (replacing it), its settings stamp last."""
    partial = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    seed_like_cohort(partial, reads_per_sample=READS, seed=SEED, chrom_length=CHROM)
    (partial / STAMP).write_text(SETTINGS)
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def ensure(folder: Path = FOLDER) -> Path:
    """The cohort's folder, generated first when missing or made with other settings."""
    stamp = folder / STAMP
    if not stamp.is_file() or stamp.read_text() != SETTINGS:
        generate(folder)
    return folder


def main() -> int:
    folder = generate()
    size = sum(path.stat().st_size for path in folder.iterdir())
    print(f"test profile data: {folder} ({size / 1e6:.1f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
