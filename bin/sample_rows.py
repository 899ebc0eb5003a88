"""The rules across a request's sample rows (`samples`, or a samplesheet's rows) that JSON
schema cannot say: a sample's id (given, or its BAM's name), ids unique, one BAM in one row, a
`normal` that names a control row, and the roles that reference_only, reference_cnn and
reference_mode allow.

The one home of these rules: the launcher and the job service load this file
(`cnvkit_nf.contract.request`), and the pipeline's input check (`check_inputs.py --samples`)
imports it, so that a direct or Platform run gets the same checks. Standard library only.

A row is a dict of the row's keys as the request names them (`id`, not a sheet's `sample`);
a problem is (row index, key, message), the index None for the rows as a whole.
"""

import re

# A sample's name: a row's id, or else its BAM's file name up to the first '.', of these
# characters (nextflow_schema.json's input pattern, made from them, captures the same name).
SAMPLE_NAME_CHARS = "A-Za-z0-9_-"
_SAFE_NAME = re.compile(f"[{SAMPLE_NAME_CHARS}]+")
LEAVE_ONE_OUT = "leave-one-out"
TO_CALL_AGAINST_OTHERS = ('to call each sample against a reference pooled from the others, '
                          'list each BAM once, as experimental, with reference_mode '
                          '"leave-one-out"')


def sample_name(path: str) -> str:
    """The sample name of a BAM or CRAM path: ``dir/Son_S2.sort.mkdup.bam`` -> ``Son_S2``."""
    base = path.rpartition("/")[2]
    stem = base.partition(".")[0]
    if not _SAFE_NAME.fullmatch(stem):
        raise ValueError(
            f"sample name {stem!r} (from {base!r}) must be made of letters, digits, '_' and '-'"
        )
    return stem


def sample_id(row: dict) -> str:
    """A row's id: as given, else its BAM's sample name (ValueError when that breaks the
    rule)."""
    return row["id"] if row.get("id") is not None else sample_name(str(row.get("bam", "")))


def row_problems(rows: list[dict], labels: list[str] | None = None,
                 reference_mode: str = "pooled", reference_only: bool = False,
                 reference_cnn: bool = False) -> list[tuple[int | None, str, str]]:
    """Every problem across `rows` (each row's own keys are the schema's to check): those of
    `cross_row_problems`, then the roles the job's kind allows."""
    return (cross_row_problems(rows, labels)
            + role_problems(rows, reference_mode, reference_only, reference_cnn))


def cross_row_problems(rows: list[dict], labels: list[str] | None = None
                       ) -> list[tuple[int | None, str, str]]:
    """Ids unique, each BAM in one row, each `normal` the id of a control row; `labels` name
    the rows in messages (default "row N")."""
    labels = labels or [f"row {n}" for n in range(1, len(rows) + 1)]
    problems: list[tuple[int | None, str, str]] = []
    ids: dict[str, int] = {}
    bams: dict[str, int] = {}
    roles = {}
    for index, row in enumerate(rows):
        given = row.get("id") is not None
        name = None
        if given or row.get("bam") is not None:
            try:
                name = sample_id(row)
            except ValueError as exc:
                problems.append((index, "bam", str(exc)))
        bam = row.get("bam")
        if bam in bams:
            other = rows[bams[bam]]
            hint = f"; {TO_CALL_AGAINST_OTHERS}" if other.get("role") != row.get("role") else ""
            problems.append((index, "bam", f"the same BAM is already listed as "
                                           f"{labels[bams[bam]]}{hint}"))
        elif bam is not None:
            bams[bam] = index
        if name in ids and bam != rows[ids[name]].get("bam"):
            source = "" if given else f" (from the file name of {bam!r})"
            problems.append((index, "id" if given else "bam",
                             f"sample id {name!r}{source} is also that of "
                             f"{labels[ids[name]]}; sample ids must be unique"))
        elif name is not None and name not in ids:
            ids[name] = index
            roles[name] = row.get("role")
    for index, row in enumerate(rows):
        normal = row.get("normal")
        if normal is None:
            continue
        if normal not in roles:
            known = ", ".join(sorted(name for name, role in roles.items() if role == "control"))
            problems.append((index, "normal", f"names no sample: {normal!r} is not a row's id "
                                              f"(the control rows are: {known or 'none'})"))
        elif roles[normal] != "control":
            problems.append((index, "normal", f"names {normal!r}, which is not a control row: "
                                              "a matched normal must be a control"))
    return problems


def role_problems(rows: list[dict], reference_mode: str, reference_only: bool,
                   reference_cnn: bool) -> list[tuple[int | None, str, str]]:
    """The roles the job's kind allows, as the request's rules (allOf) say them for its two
    lists."""
    experimental = [i for i, row in enumerate(rows) if row.get("role") == "experimental"]
    controls = [i for i, row in enumerate(rows) if row.get("role") == "control"]
    problems: list[tuple[int | None, str, str]] = []
    if reference_only:
        problems += [(i, "role", "must be control when reference_only is true: a "
                                 "reference-only job calls no sample") for i in experimental]
    elif not experimental:
        problems.append((None, "", "must have at least 1 experimental row (a sample to call)"))
    if reference_cnn:
        problems += [(i, "role", "must be experimental when reference_cnn is given: the "
                                 "reference takes the place of the controls") for i in controls]
    if reference_mode == LEAVE_ONE_OUT:
        problems += [(i, "role", "must be experimental with reference_mode leave-one-out: each "
                                 "sample's reference is pooled from the other samples, not "
                                 "from controls") for i in controls]
        if len(rows) < 2:
            problems.append((None, "", "must have at least 2 rows with reference_mode "
                                       "leave-one-out: each sample is called against the "
                                       "others"))
    return problems


def vcf_columns(row: dict, rows: list[dict]) -> list[str]:
    """The columns a row's VCF must have: the sample's (its vcf_sample, else its id), then its
    matched normal's (the normal row's vcf_sample, else its id); none without a VCF."""
    if row.get("vcf") is None:
        return []
    normal = next((other for other in rows if row.get("normal") is not None
                   and other.get("id") == row["normal"]), None)
    return [row.get("vcf_sample") or row["id"]] + (
        [normal.get("vcf_sample") or normal["id"]] if normal is not None else [])
