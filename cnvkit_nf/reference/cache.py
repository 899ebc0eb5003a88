"""References kept between jobs: a job whose pooled reference would be built from the same
inputs as an earlier job's reuses that one instead (README, "Reusing a reference").

    <folder>/<project>/<key>/        reference.cnn, reference.json, targets.bed,
                                     antitargets.bed, entry.json; never changed once there
    <locks>/<project>/<key>.lock     flock: exclusive while a job builds the entry (or a prune
                                     removes it), shared while a job uses it

A state dir keeps them in its work dir (`references/`), their locks in the state dir
(`locks/references/`: see `entries`).

The key digests what shapes a reference: the code of the stages that build it, the CNVkit
version, the option strings of the shaping substeps, the identity of every pooled control BAM
(and its given sex, which the reference's -x follows), the FASTA, the BED and the annotation as
Nextflow reads them, the method (assay), autobin and the bin-size plan, what the accessible
regions are made of (`access.ingredients`: the access key, or a given access_bed's identity)
and, when autobin applies without controls, the experimental BAMs' identities (autobin reads
them); leave-one-out jobs build one reference per sample and keep none. A local
file's identity is its device, inode, size, mtime and ctime (a rewrite changes the ctime, which
no `touch -r` restores); a staged object's is its bucket, key, ETag and size (its folder in the
staging cache). A job whose inputs changed while it built a reference does not keep it. Each
project has its own entries.

The entries' machinery is `entries.EntryStore`'s, which the access cache shares: an entry is
made in a hidden folder (`.<key>.<random>`), each file and the folder synced to
disk, then renamed into place whole: a crash leaves at most a hidden folder, which `entries`
ignores and `prune` removes once no job holds its key. entry.json records each file's size
and SHA-256; `acquire` checks them (sizes first, then digests) before a job reuses the entry.
An entry that fails the check, or whose entry.json records no digests (kept by an older
version), is removed under the exclusive lock and the job builds the reference again, with a
warning (`Lease.warning`): a damaged reference is never reused silently.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path

from cnvkit_nf.contract.params import pooled_controls
from cnvkit_nf.pipeline_files import PIPELINE, load_bin
from cnvkit_nf.reference import access
from cnvkit_nf.reference.entries import (  # noqa: F401 - the cache's names, as before
    DEFAULT_MAX_BYTES,
    Entry,
    EntryStore,
    Lease,
    identity,
    parse_size,
)

FILES = ("reference.cnn", "reference.json", "targets.bed", "antitargets.bed")
# The pipeline's code that builds a reference: a change to it is a new key.
BUILDERS = ("modules/cnvkit/prepare/main.nf", "subworkflows/local/coverage/main.nf",
            "modules/cnvkit/coverage/main.nf", "bin/coverage_chunks.py",
            "modules/cnvkit/reference/main.nf", "bin/cnvkit_stage.py", "bin/reference_record.py",
            "bin/bin_sizes.py")


# The request fields whose options shape a reference, as the record defines them.
SHAPING = load_bin("reference_record").SHAPING


def key_of(params: dict, staging_cache: Path | None = None) -> str | None:
    """The cache key of the reference a job's params would build; None when they build none
    (a reused reference) or name an input that is not there."""
    controls = pooled_controls(params)
    if controls is None:
        return None
    controls = sorted(controls, key=lambda row: row["bam"])
    inputs = {"controls": [row["bam"] for row in controls], "ref": params["ref"],
              "bed": params.get("bed"), "annotation": params.get("annotation_file")}
    checked = params["checked_options"]
    autobin = any(checked.get(field, {}).get("size_from") == "autobin"
                  for field in ("target_conf", "antitarget_conf"))
    try:
        identities = {
            "controls": [identity(bam, staging_cache) for bam in inputs["controls"]],
            **{name: identity(inputs[name], staging_cache) if inputs[name] else None
               for name in ("ref", "bed", "annotation")},
            "access": access.ingredients(params, staging_cache),
            # autobin reads the tumours' BAMs when there is no control
            "autobin": [identity(bam, staging_cache) for bam in sorted(_experimental(params))]
            if autobin and not controls else None,
        }
    except OSError:
        return None
    described = {
        "pipeline": [hashlib.sha256((PIPELINE / n).read_bytes()).hexdigest() for n in BUILDERS],
        "cnvkit": importlib.metadata.version("cnvkit"),
        "options": {field: checked[field]["args"] for field in SHAPING},
        "inputs": identities,
        "control_names": [Path(bam).name for bam in inputs["controls"]],
        "control_sexes": [row.get("sex") for row in controls],
        "method": params.get("method", "hybrid"),
        "autobin": params.get("autobin"),
        "bin_sizes": {field: {key: checked.get(field, {}).get(key)
                              for key in ("size", "size_from", "split")}
                      for field in ("target_conf", "antitarget_conf")},
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:40]


def _experimental(params: dict) -> list[str]:
    """The BAMs of a job's experimental samples."""
    if "samples" not in params:
        return list(params.get("experimental_inputs", []))
    return [row["bam"] for row in params["samples"] if row["role"] == "experimental"]


class ReferenceCache(EntryStore):
    """The kept references under one folder, by project (see the module's docstring)."""

    FILES = FILES
    RECORD = "reference.json"
    KIND = "reference"
    PLACE = "references"
