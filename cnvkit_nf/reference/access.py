"""Accessible regions kept between jobs: `cnvkit.py access` depends only on the FASTA, the
access options (`access_conf`) and the exclusion BEDs (`access_exclude`), and costs 18-60 s on
hg38, so a job whose access would be the same as an earlier one's gets that one as its
`access_bed` instead of computing it (the pipeline copies it to reference/access.bed: the
results are the same).

    <folder>/<project>/<key>/        access.bed, entry.json; never changed once there
    <locks>/<project>/<key>.lock     as the reference cache's (`entries`): a state dir keeps
                                     them in its work dir (`access/`), their locks in the state
                                     dir (`locks/access/`)

The key digests the FASTA's identity (`entries.identity`), access_conf's checked arguments, the
identity of each exclusion BED in the request's order, the CNVkit version and the pipeline's
line that runs access (`ACCESS_CODE`). Only a job that builds its regions (no reused
reference), of a method that uses access (not amplicon) and without a given access_bed uses the
cache. Making, verifying and pruning entries are the entry store's (`entries.EntryStore`), as
for references: a damaged entry is removed and computed again, with a warning. A job whose
access another job of the project is computing does not wait for that job's whole run: it
computes its own and keeps none.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from pathlib import Path

from cnvkit_nf.pipeline_files import PIPELINE
from cnvkit_nf.reference.entries import EntryStore, identity

FILES = ("access.bed",)
# The pipeline's code that runs `cnvkit.py access`: its lines that name it are in the key.
ACCESS_CODE = "modules/cnvkit/prepare/main.nf"
REUSED = ("access reused: the accessible regions computed by an earlier job of this project "
          "from the same FASTA, access options, exclusion BEDs and CNVkit version")


class AccessCache(EntryStore):
    """The kept accessible regions under one folder, by project (see the module's docstring)."""

    FILES = FILES
    RECORD = None
    KIND = "access BED"
    PLACE = "access"


def access_code() -> list[str]:
    """The lines of the pipeline's module that run `cnvkit.py access`."""
    text = (PIPELINE / ACCESS_CODE).read_text()
    return [line.strip() for line in text.splitlines() if "cnvkit.py access" in line]


def computes_access(params: dict) -> bool:
    """Whether a job's params compute access: they build regions (no reused reference), of a
    method that uses access, without an access BED given."""
    return not (params.get("reference_cnn") or params.get("access_bed")
                or params.get("method", "hybrid") == "amplicon")


def key_of(params: dict, staging_cache: Path | None = None) -> str | None:
    """The cache key of the access a job's params compute; None when they compute none, or
    name a file that is not there."""
    if not computes_access(params):
        return None
    try:
        inputs = {"ref": identity(params["ref"], staging_cache),
                  "exclude": [identity(path, staging_cache)
                              for path in params.get("access_exclude") or []]}
    except OSError:
        return None
    described = {
        "code": access_code(),
        "cnvkit": importlib.metadata.version("cnvkit"),
        "options": (params.get("checked_options") or {}).get("access_conf", {}).get("args", ""),
        "inputs": inputs,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:40]


def ingredients(params: dict, staging_cache: Path | None = None) -> list | None:
    """What a job's accessible regions are made of, for the reference cache's key: the same
    whether the job computes them or gets a kept copy (`reusing`). None for amplicon."""
    if params.get("method", "hybrid") == "amplicon":
        return None
    kept = ((params.get("job") or {}).get("access") or {})
    if kept.get("reused"):
        return ["computed", kept["key"]]
    if params.get("access_bed"):
        return ["given", identity(params["access_bed"], staging_cache)]
    return ["computed", key_of(params, staging_cache)]


def reusing(params: dict, access_bed: str) -> dict:
    """`params` changed to take `access_bed` (a kept copy) instead of computing access: its
    access options and exclusion BEDs are not passed (what they were stays in
    `params["job"]["access"]`, which the caller writes)."""
    changed = {key: value for key, value in params.items() if key != "access_exclude"}
    options = dict(params.get("checked_options") or {})
    options["access_conf"] = {"args": "", "processes": None}
    return {**changed, "access_bed": access_bed, "access_conf": "", "checked_options": options}
