"""The request contract of genes_of_interest: gene symbols the request schema accepts (and
refuses, hostile ones among them), the params they become, and the same rule in the generated
params schema that main.nf enforces on a direct run."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from cnvkit_nf.contract.params import to_params
from cnvkit_nf.contract.pipeline_schema import TARGET
from cnvkit_nf.contract.problems import errors
from cnvkit_nf.contract.request import validate_request

LOCAL = {"experimental_inputs": ["/data/T1.bam"], "control_inputs": ["/data/N1.bam"],
         "output_dir": "/data/out/", "ref": "/data/hg38.fa", "bed": "/data/kit.bed"}
SYMBOL = ("must be a gene symbol: a letter or digit, then up to 63 letters, digits, '.', '_' "
          "or '-'")
HOSTILE = ["$(touch x)", "a;b", "TP53 EGFR", "${params.ref}", "`id`", "-x", "", "a" * 65,
           "EGFR\n"]


def problems(genes: object) -> list[tuple[str, str]]:
    return [(p.field, p.message)
            for p in errors(validate_request({**LOCAL, "genes_of_interest": genes}).problems)]


def test_gene_symbols_are_accepted_and_become_params():
    genes = ["EGFR", "CDKN2A", "HLA-DRB1", "C4orf3.1", "MT_ND1", "7SK"]
    validation = validate_request({**LOCAL, "genes_of_interest": genes})
    assert validation.ok, validation.problems
    assert validation.request.genes_of_interest == tuple(genes)
    assert to_params(validation.request)["genes_of_interest"] == genes


def test_no_genes_means_no_param():
    for data in (LOCAL, {**LOCAL, "genes_of_interest": []}):
        validation = validate_request(data)
        assert validation.ok and validation.request.genes_of_interest == ()
        assert "genes_of_interest" not in to_params(validation.request)


def test_hostile_and_malformed_items_are_each_named():
    found = problems(["EGFR", *HOSTILE, 7])
    assert found == [(f"genes_of_interest[{i}]", SYMBOL) for i in range(1, len(HOSTILE) + 2)]
    assert validate_request({**LOCAL, "genes_of_interest": HOSTILE}).request \
        .genes_of_interest == ()


@pytest.mark.parametrize(("genes", "expected"), [
    ("EGFR", [("genes_of_interest", "expected array, got string")]),
    (["EGFR", "TP53", "EGFR"], [("genes_of_interest", 'lists "EGFR" more than once')]),
    ([f"G{i}" for i in range(201)], [("genes_of_interest", "must list at most 200 genes")]),
])
def test_the_list_itself(genes, expected):
    assert problems(genes) == expected


def test_the_params_schema_refuses_the_same_symbols():
    """A direct `nextflow run` is checked against nextflow_schema.json (nf-schema): the same
    item pattern, count and uniqueness as the request's."""
    validator = Draft202012Validator(json.loads(TARGET.read_text()))
    params = {**to_params(validate_request(LOCAL).request), "genes_of_interest": ["EGFR"]}
    assert list(validator.iter_errors(params)) == []
    bad = {**params, "genes_of_interest": ["EGFR", *HOSTILE, "EGFR"]}
    paths = sorted(".".join(map(str, e.absolute_path)) for e in validator.iter_errors(bad))
    assert paths == ["genes_of_interest"] + [f"genes_of_interest.{i}"
                                             for i in range(1, len(HOSTILE) + 1)]
