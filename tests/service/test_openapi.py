"""The API document: generated from the request schema, committed, and valid OpenAPI 3.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cnvkit_nf.contract.request import load_schema
from cnvkit_nf.service import openapi

ROOT = Path(__file__).resolve().parents[2]


def test_committed_document_is_generated():
    assert (ROOT / "schema" / "openapi.json").read_text() == openapi.render()


def test_document_is_valid_openapi():
    try:
        from openapi_spec_validator import validate
    except ImportError:  # a test tool, not in the runtime's .venv
        pytest.fail("openapi-spec-validator is missing: run `make test` (the tests run with "
                    ".venv-test)")
    validate(json.loads(openapi.render()))


def test_request_body_is_the_request_schema():
    document = openapi.document()
    body = document["components"]["schemas"]["CnvkitRequest"]
    request = load_schema()
    assert set(body["properties"]) == set(request["properties"])
    assert body["required"] == request["required"]
    assert body["additionalProperties"] is False
    instance = document["components"]["schemas"]["Instance"]["properties"]
    assert set(request["properties"]) | {"instance_id", "owner", "status", "start_time",
                                         "duration", "progress", "message",
                                         "warnings"} == set(instance)
