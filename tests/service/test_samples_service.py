"""The service takes rows with facts (issue 24): a submission with `samples` or a
`samplesheet` (read inside the project's data roots) is checked as `cnvkit-nf run` checks it,
queued, and its job's params carry the rows; a sheet outside the roots is refused unread."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cnvkit_nf.contract.params import to_params
from cnvkit_nf.service.config import DEFAULT_LIMITS, Caller, DataRoot, ServiceConfig
from cnvkit_nf.service.job_api import Invalid, Jobs
from cnvkit_nf.service.workers import RUNNER
from cnvkit_nf.state.jobs import JobStore
from scaffold.simulate import SampleSpec, default_events, make_cohort

CHROM = 60_000
ALICE = Caller("alice", frozenset({"lab-a"}))


class Pool:
    """The worker pool's calls the job API makes: a submitted plan is recorded, not run."""

    running, workers = 0, 1

    def __init__(self, store: JobStore):
        self.store, self.plans = store, {}

    def submit(self, job_plan, project: str, owner: str):
        job = self.store.create(job_plan.request.raw, project=project, owner=owner,
                                runner=RUNNER)
        self.plans[job.instance_id] = job_plan
        return job


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """lab-a's data root with a tumour, its matched normal (a VCF of both) and a control."""
    base = tmp_path_factory.mktemp("site")
    data = base / "data" / "lab-a"
    samples = [SampleSpec("Normal_A", "female", control=True),
               SampleSpec("Control_M", "male", control=True),
               SampleSpec("Tumour_A", "female", default_events(CHROM), purity=0.7,
                          normal="Normal_A")]
    cohort = make_cohort(data / "cohort", samples, reads_per_sample=20_000, seed=13,
                         chrom_length=CHROM, vcf_suffix=".vcf")
    (base / "elsewhere").mkdir()
    return {"base": base, "data": data, "cohort": cohort}


@pytest.fixture
def jobs(site, tmp_path) -> Jobs:
    store = JobStore(tmp_path / "jobs.sqlite")
    root = DataRoot(str(site["base"] / "data" / "{project}"), writable=True)
    return Jobs(store, Pool(store), ServiceConfig(data_roots=(root,),
                                                  limits=dict(DEFAULT_LIMITS)), None)


def request(site, name: str, **changes) -> dict:
    cohort = site["cohort"]
    return {"output_dir": str(site["data"] / "out" / name), "ref": str(cohort.ref),
            "bed": str(cohort.bed), **changes}


def params_of(jobs: Jobs, instance_id: str) -> dict:
    return to_params(jobs.pool.plans[instance_id].request)


def test_a_submission_with_samples_is_queued_with_its_rows(site, jobs):
    rows = site["cohort"].request_samples()
    job, warnings = jobs.submit(json.dumps(request(site, "rows", samples=rows)), "lab-a", ALICE)
    assert warnings == [] and job.request["samples"] == rows  # kept as it came
    params = params_of(jobs, job.instance_id)
    assert [(row["id"], row["role"], row["sex"], row.get("purity"), row.get("normal"))
            for row in params["samples"]] == [
        ("Normal_A", "control", "female", None, None),
        ("Control_M", "control", "male", None, None),
        ("Tumour_A", "experimental", "female", 0.7, "Normal_A")]
    assert params["samples"][2]["vcf"] == str(site["cohort"].vcfs["Tumour_A"])


@pytest.mark.parametrize("suffix", [".csv", ".tsv"])
def test_a_submission_with_a_samplesheet_is_queued_with_its_rows(site, jobs, suffix):
    sheet = site["cohort"].write_samplesheet(site["data"] / f"cohort{suffix}")
    job, _ = jobs.submit(json.dumps(request(site, f"sheet{suffix}", samplesheet=str(sheet))),
                         "lab-a", ALICE)
    assert job.request["samplesheet"] == str(sheet)
    params = params_of(jobs, job.instance_id)
    assert "samplesheet" not in params  # the rows it held, not the sheet
    assert {row["id"]: row["bam"] for row in params["samples"]} == \
        {name: str(path) for name, path in site["cohort"].bams.items()}


def test_a_samplesheets_problems_are_the_submissions(site, jobs):
    sheet = site["data"] / "bad.csv"
    sheet.write_text("sample,bam,role,purity\n"
                     f"T,{site['cohort'].bams['Tumour_A']},experimental,1.5\n")
    with pytest.raises(Invalid) as refused:
        jobs.submit(json.dumps(request(site, "bad", samplesheet=str(sheet))), "lab-a", ALICE)
    fields = {problem.field for problem in refused.value.problems}
    assert "samplesheet line 2, column purity" in fields


def test_a_samplesheet_outside_the_projects_roots_is_refused_unread(site, jobs):
    secret = site["base"] / "elsewhere" / "secret.csv"
    secret.write_text("bam,role\n/private/patient_x.bam,experimental\n")
    link = site["data"] / "link.csv"
    if not link.exists():
        os.symlink(secret, link)
    for path in (secret, link):
        with pytest.raises(Invalid) as refused:
            jobs.submit(json.dumps(request(site, "secret", samplesheet=str(path))), "lab-a",
                        ALICE)
        text = str(refused.value)
        assert "samplesheet" in text and "data roots" in text
        assert "patient_x" not in text
    assert jobs.list({"lab-a"})[0] == 0


def test_a_vcf_outside_the_projects_roots_is_refused_as_a_bam_would_be(site, jobs):
    """A sample's VCF is an input like its BAM: opened only inside the project's roots."""
    outside = site["base"] / "elsewhere" / "t.vcf"
    outside.write_text("##fileformat=VCFv4.2\n")
    rows = [{**row, "vcf": str(outside)} if row.get("vcf") else row
            for row in site["cohort"].request_samples()]
    with pytest.raises(Invalid) as refused:
        jobs.submit(json.dumps(request(site, "vcf", samples=rows)), "lab-a", ALICE)
    (problem,) = refused.value.problems
    assert problem.field == "samples[2].vcf" and "data roots" in problem.message


def test_a_samples_vcf_is_pinned_in_the_private_store_as_its_bam(site, jobs, tmp_path):
    """What a job's turn does (Execution._stage): every input opened inside the roots and
    admitted into the private store; the params name the private copies, the VCF's too."""
    from cnvkit_nf.contract.request import validate_request
    from cnvkit_nf.launch.input_store import InputStore
    from cnvkit_nf.launch.local_files import open_inputs

    parsed = validate_request(request(site, "pin", samples=site["cohort"].request_samples()))
    opened, problems = open_inputs(parsed.request, jobs.config.roots("lab-a"))
    store = InputStore(tmp_path / "store")
    try:
        private = {item.path: store.admit(item) for item in opened}
    finally:
        for item in opened:
            item.close()
    assert problems == [] and str(site["cohort"].vcfs["Tumour_A"]) in private
    params = to_params(parsed.request, staged=private)
    tumour = params["samples"][2]
    for key in ("bam", "vcf"):
        assert Path(tumour[key]).is_relative_to(tmp_path / "store")
    assert Path(tumour["vcf"]).read_bytes() == site["cohort"].vcfs["Tumour_A"].read_bytes()


def test_the_services_input_limit_counts_rows(site, tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    root = DataRoot(str(site["base"] / "data" / "{project}"), writable=True)
    small = Jobs(store, Pool(store), ServiceConfig(data_roots=(root,), limits={
        **DEFAULT_LIMITS, "max_inputs": 2}), None)
    sheet = site["cohort"].write_samplesheet(site["data"] / "three.csv")
    for changes in ({"samples": site["cohort"].request_samples()},
                    {"samplesheet": str(sheet)}):
        with pytest.raises(Invalid) as refused:
            small.submit(json.dumps(request(site, "many", **changes)), "lab-a", ALICE)
        (problem,) = refused.value.problems
        assert (problem.field, problem.message) == \
            (next(iter(changes)), "3 BAM files in all; this service takes at most 2")
