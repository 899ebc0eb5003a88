"""The README's recipes (issues 24 and 25) are requests that validate without a problem and
whose params carry the facts each recipe is about; the pipeline tests run the same shapes on
generated cohorts (tests/pipeline/test_sample_facts.py, tests/pipeline/test_assays.py)."""

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


def test_the_readme_has_its_recipes():
    assert set(RECIPES) == {"germline", "tumour-only", "tumour-normal", "mixed-sex", "wgs",
                            "amplicon", "hybrid-autobin"}
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


def test_wgs_without_a_bed_with_a_blacklist(tmp_path):
    params = params_of("wgs", tmp_path)
    assert params["method"] == "wgs" and "bed" not in params and "autobin" not in params
    assert params["access_exclude"] == [str(tmp_path / "ref" / "hg38-blacklist.v2.bed")]
    plan = params["checked_options"]["target_conf"]
    assert (plan["size_from"], plan["split"]) == ("autobin", True)
    assert params["checked_options"]["antitarget_conf"]["size_from"] == "none"


def test_amplicon_panel_with_autobin(tmp_path):
    params = params_of("amplicon", tmp_path)
    assert (params["method"], params["autobin"]) == ("amplicon", True)
    assert params["checked_options"]["target_conf"]["size_from"] == "autobin"
    assert params["checked_options"]["antitarget_conf"]["size_from"] == "none"


def test_hybrid_with_batch_bin_sizes(tmp_path):
    params = params_of("hybrid-autobin", tmp_path)
    assert params["method"] == "hybrid" and params["autobin"] is True
    assert params["checked_options"]["access_conf"]["args"] == "-s 10000"
    assert {params["checked_options"][f]["size_from"]
            for f in ("target_conf", "antitarget_conf")} == {"autobin"}
