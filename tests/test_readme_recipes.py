"""The README's recipes (issue 24) are requests that validate without a problem and whose
params carry the facts each recipe is about; the pipeline tests run the same shapes on
generated cohorts (tests/pipeline/test_sample_facts.py)."""

import json
import re
from pathlib import Path

from cnvkit_nf.contract.params import to_params
from cnvkit_nf.contract.request import validate_request

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
RECIPES = dict(re.findall(r"```json recipe:(\S+)\n(.*?)```", README, re.S))
SHEETS = dict(re.findall(r"```csv sheet:(\S+)\n(.*?)```", README, re.S))


def params_of(name: str, base: Path) -> dict:
    """The recipe's params, after a validation that found nothing to say."""
    data = json.loads(RECIPES[name])
    validation = validate_request(data, sheet=SHEETS.get(data.get("samplesheet")))
    assert validation.problems == [], validation.problems
    return to_params(validation.request, base=base)


def test_the_readme_has_the_four_recipes():
    assert set(RECIPES) == {"germline", "tumour-only", "tumour-normal", "mixed-sex"}
    assert set(SHEETS) == {"cohort.csv"}


def test_germline_cohort_calls_each_sample_against_the_others(tmp_path):
    params = params_of("germline", tmp_path)
    assert params["reference_mode"] == "leave-one-out"
    assert [row["role"] for row in params["samples"]] == ["experimental"] * 4
    assert [row.get("sex") for row in params["samples"]] == ["female", "male", None, None]


def test_tumour_only_with_purity(tmp_path):
    params = params_of("tumour-only", tmp_path)
    tumour, *controls = params["samples"]
    assert (tumour["id"], tumour["purity"], tumour["sex"]) == ("T1", 0.6, "male")
    assert [row["id"] for row in controls] == ["N_a", "N_b"]
    assert params["call_conf"] == "-m clonal"


def test_tumour_normal_with_a_vcf(tmp_path):
    params = params_of("tumour-normal", tmp_path)
    tumour, normal = params["samples"]
    assert tumour["vcf"] == str(tmp_path / "vcf" / "T1.vcf.gz")
    assert (tumour["vcf_sample"], tumour["normal"], normal["vcf_sample"]) == \
        ("TUMOR", "N1", "NORMAL")
    assert params["pool_matched_normals"] is True


def test_mixed_sexes_as_a_samplesheet(tmp_path):
    params = params_of("mixed-sex", tmp_path)
    assert [(row["id"], row["role"], row["sex"]) for row in params["samples"]] == [
        ("Son", "experimental", "male"), ("Daughter", "experimental", "female"),
        ("Father", "control", "male"), ("Mother", "control", "female")]
