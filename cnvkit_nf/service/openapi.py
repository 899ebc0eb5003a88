"""Build `schema/openapi.json`, the OpenAPI 3.1 description of the job service's API.

The request body and the echoed fields of a job come from the request's JSON schema, so the API
document cannot drift from what `cnvkit-nf validate` checks; a test checks that the committed
file is what `python -m cnvkit_nf.service.openapi` writes, and that the service serves it.
"""

from __future__ import annotations

import copy
import functools
import json
import sys

from cnvkit_nf.contract.request import load_schema
from cnvkit_nf.pipeline_files import SCHEMA
from cnvkit_nf.state.jobs import CANCELING, CANCELLED, FAILED, FINISHED, LAUNCHING, RUNNING, Failure

TARGET = SCHEMA / "openapi.json"
_JOB_FIELDS = {
    "instance_id": {"type": "string", "format": "uuid", "description": "The job ID."},
    "owner": {"type": "string", "description": "Who submitted the job (the token's owner)."},
    "status": {"type": "string", "description": "The job's state.",
               "enum": [LAUNCHING, RUNNING, FINISHED, FAILED, CANCELLED, CANCELING]},
    "start_time": {"type": "integer", "description": "When the job was submitted (Unix ms)."},
    "duration": {"type": "integer", "description": "Seconds from submission to the end, or "
                                                   "to now while the job has not ended."},
    "progress": {"type": "string", "pattern": r"^\d+/\d+$",
                 "description": "Pipeline tasks done / expected, e.g. \"3/21\"."},
    "message": {"type": ["string", "null"], "description": "Why the job failed, or null."},
    "warnings": {"type": "array", "items": {"type": "string"},
                 "description": "Notices of a run that are not failures (extension): a "
                                "reference reused, a bin size warned of, a cancel."},
}
_ERRORS = {
    "400": "Invalid request or parameter (DLI.0001), limit reached (DLI.0009), or a job that "
           "cannot be cancelled (DLI.0007).",
    "401": "Missing or unknown X-Auth-Token (DLI.0013).",
    "404": "No such job or project for this token (DLI.0023).",
    "500": "Internal server error (DLI.0999).",
}


WES_SPEC = "https://github.com/ga4gh/workflow-execution-service-schemas, version 1.1.0"
_WES_OPERATIONS = (
    ("service-info", "get", "GetServiceInfo", "The service: workflow types, run states."),
    ("runs", "get", "ListRuns", "The token's runs, newest first, a page at a time."),
    ("runs", "post", "RunWorkflow", "Submit a run: workflow_params is the request."),
    ("runs/{run_id}", "get", "GetRunLog",
     "A run: its request, state, task logs and outputs (the manifest's files)."),
    ("runs/{run_id}/status", "get", "GetRunStatus", "A run's state."),
    ("runs/{run_id}/cancel", "post", "CancelRun", "Cancel a run."),
    ("runs/{run_id}/tasks", "get", "ListTasks", "A run's tasks (from its trace), a page at a "
     "time."),
    ("runs/{run_id}/tasks/{task_id}", "get", "GetTask", "One task of a run."),
)
# Where a RunLog's and a TaskLog's stdout and stderr URLs lead (an extension): text
_WES_OUTPUTS = (
    ("runs/{run_id}/stdout", "RunStdout",
     "Nextflow's console output (its stdout and stderr as one stream)."),
    ("runs/{run_id}/stderr", "RunStderr", "Nextflow's log (.nextflow.log)."),
    ("runs/{run_id}/tasks/{task_id}/stdout", "TaskStdout",
     "A task's standard output (.command.out)."),
    ("runs/{run_id}/tasks/{task_id}/stderr", "TaskStderr",
     "A task's standard error (.command.err)."),
)


def _request_schema() -> tuple[dict, dict]:
    """The request schema with its `$defs` moved to the document's components."""
    schema = copy.deepcopy(load_schema())
    for key in ("$schema", "$id"):
        schema.pop(key)
    text = json.dumps(schema).replace('"#/$defs/', '"#/components/schemas/')
    schema = json.loads(text)
    return schema, schema.pop("$defs")


def _responses(ok: str, schema: dict | None, *errors: str) -> dict:
    answers = {ok: {"description": "Success.", "content": {
        "application/json": {"schema": schema or {"type": "object"}}}}}
    for code in errors:
        answers[code] = {"description": _ERRORS[code], "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return answers


def _query_parameter(name: str, description: str, **schema) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": {"type": "integer", **schema} if name != "instance-id" else schema}


@functools.cache
def document() -> dict:
    """The OpenAPI document (shared; do not modify)."""
    request, defs = _request_schema()
    instance = {"type": "object", "description": "A job: the request's fields, echoed, and "
                "the job's own.", "properties": {**request["properties"], **_JOB_FIELDS},
                "required": list(_JOB_FIELDS)}
    project = {"name": "project_id", "in": "path", "required": True,
               "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"}}
    query = [
        _query_parameter("instance-id", "Only the job with this ID.", type="string"),
        _query_parameter("limit", "Jobs per page.", minimum=1, maximum=100, default=10),
        _query_parameter("offset", "Jobs to skip.", minimum=0, default=0),
        _query_parameter("start", "Only jobs submitted at or after this time (Unix ms).",
                         minimum=0),
        _query_parameter("end", "Only jobs submitted at or before this time (Unix ms).",
                         minimum=0),
    ]
    jobs = {
        "post": {
            "operationId": "submitCnvkitJob",
            "summary": "Create, submit and run a CNVkit job.",
            "description": "The request is validated (schema, option strings, data roots, "
                           "limits) and its inputs checked before the job is accepted.",
            "parameters": [project],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/CnvkitRequest"}}}},
            "responses": _responses("201", {
                "type": "object", "required": ["instance_id"],
                "properties": {"instance_id": _JOB_FIELDS["instance_id"],
                               "warnings": {"type": "array", "items": {"type": "string"}}}},
                "400", "401", "404", "500"),
        },
        "get": {
            "operationId": "queryCnvkitJobs",
            "summary": "Query a project's CNVkit jobs, newest first.",
            "parameters": [project, *query],
            "responses": _responses("200", {
                "type": "object", "required": ["count", "instances"],
                "properties": {"count": {"type": "integer"}, "instances": {
                    "type": "array", "items": {"$ref": "#/components/schemas/Instance"}}}},
                "400", "401", "404", "500"),
        },
    }
    instance_id = {"name": "instance_id", "in": "path", "required": True,
                   "schema": {"type": "string"}}
    cancel = {"delete": {
        "operationId": "cancelCnvkitJob",
        "summary": "Cancel a job: queued jobs never start, running ones are stopped.",
        "parameters": [project, instance_id],
        "responses": _responses("200", None, "400", "401", "404", "500"),
    }}
    job_id = {**instance_id, "name": "job_id"}
    family_cancel = {"delete": {
        **cancel["delete"], "operationId": "cancelGeneJob",
        "summary": "Cancel a job at the path the service family documents for its gene jobs "
                   "(the same as DELETE .../gene/tools/cnvkit/{instance_id}).",
        "parameters": [project, job_id],
    }}
    retry = {"post": {
        "operationId": "retryCnvkitJob",
        "summary": "Run a FAILED or CANCELLED job again (an extension of the family's API).",
        "description": "The job is LAUNCHING again under the same instance_id; its inputs "
                       "and the service's rules are checked again at its turn, and the tasks "
                       "its earlier run finished are reused. Refused (DLI.0007) for a job in "
                       "any other state, (DLI.0001) while another job publishes into its "
                       "output_dir.",
        "parameters": [project, instance_id],
        "responses": _responses("200", {
            "type": "object", "required": ["instance_id", "status"],
            "properties": {"instance_id": _JOB_FIELDS["instance_id"],
                           "status": {"type": "string"}}},
            "400", "401", "404", "500"),
    }}
    text = {"type": "string"}
    log = {"get": {
        "operationId": "cnvkitJobLog",
        "summary": "A job's log and its failure in full (an extension of the family's API).",
        "description": "The end of Nextflow's log (at most 1 MiB; log_truncated says whether "
                       "it was longer), Nextflow's error report from its `ERROR ~` line (or "
                       "the job's message), and each failed task's error output.",
        "parameters": [project, instance_id],
        "responses": _responses("200", {
            "type": "object",
            "required": ["instance_id", "status", "failure", "failed_tasks", "log"],
            "properties": {
                "instance_id": _JOB_FIELDS["instance_id"], "status": text,
                "message": _JOB_FIELDS["message"], "warnings": _JOB_FIELDS["warnings"],
                "failure": {"type": ["string", "null"]},
                "failure_kind": {"enum": [*map(str, Failure), None],
                                 "description": "Why a FAILED job failed: its workflow run, "
                                                "its inputs refused when its turn came, or "
                                                "the service (null in other states)."},
                "failed_tasks": {"type": "array", "items": {"type": "object", "properties": {
                    "name": text, "exit": text, "stderr": text,
                    "stderr_truncated": {"type": "boolean"}}}},
                "log": text, "log_truncated": {"type": "boolean"}}},
            "401", "404", "500"),
    }}
    health = {"get": {"operationId": "health", "summary": "Liveness and queue sizes.",
                      "security": [], "responses": _responses("200", None)}}
    spec = {"get": {"operationId": "openapi", "summary": "This document.", "security": [],
                    "responses": _responses("200", None)}}
    run_id = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "string"}}
    task_id = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string"}}
    wes_error = {"$ref": "#/components/schemas/WesError"}
    wes_paths: dict[str, dict] = {}
    for path, method, operation, summary in _WES_OPERATIONS:
        wes_paths.setdefault("/ga4gh/wes/v1/" + path, {})[method] = {
            "operationId": f"wes{operation}", "tags": ["GA4GH WES 1.1"], "summary": summary,
            "description": f"GA4GH WES 1.1 `{operation}` ({WES_SPEC}): a run is a job, its "
                           "workflow_params the request.",
            "security": [{"token": []}, {"bearer": []}]
            + ([{}] if operation == "GetServiceInfo" else []),  # without a token: no counts
            **({"parameters": [run_id, task_id][:path.count("{")]} if "{" in path else {}),
            **({"requestBody": {"required": True, "content": {"multipart/form-data": {
                "schema": {"type": "object",
                           "required": ["workflow_params", "workflow_type", "workflow_url"],
                           "properties": {**{name: {"type": "string"} for name in (
                               "workflow_params", "workflow_type", "workflow_type_version",
                               "workflow_url", "tags")}, "workflow_attachment": {
                                   "type": "array", "description": "Only the pipeline's "
                                   "main.nf, named by a relative workflow_url.",
                                   "items": {"type": "string", "format": "binary"}}}}}}}}
               if operation == "RunWorkflow" else {}),
            "responses": {
                "200": {"description": "Success.",
                        "content": {"application/json": {"schema": {"type": "object"}}}},
                **{code: {"description": text,
                          "content": {"application/json": {"schema": wes_error}}}
                   for code, text in (("400", "Malformed or refused."),
                                      ("401", "No valid token."),
                                      ("404", "No such run for this token."))}},
        }
    for path, operation, summary in _WES_OUTPUTS:
        wes_paths["/ga4gh/wes/v1/" + path] = {"get": {
            "operationId": f"wes{operation}",
            "tags": ["GA4GH WES 1.1"], "summary": summary,
            "description": "An extension: the URL a RunLog's or TaskLog's stdout or stderr "
                           "names, where the file exists; its last MiB (a first line says "
                           "when it is longer).",
            "security": [{"token": []}, {"bearer": []}],
            "parameters": [run_id, task_id][:path.count("{")],
            "responses": {
                "200": {"description": "Success.",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                **{code: {"description": text,
                          "content": {"application/json": {"schema": wes_error}}}
                   for code, text in (("401", "No valid token."),
                                      ("404", "No such run or output for this token."))}},
        }}
    return {
        "openapi": "3.1.0",
        "info": {"title": "cnvkit-nf job service", "version": "2.0",
                 "description": load_schema()["description"]},
        "security": [{"token": []}],
        "paths": {
            "/v2.0/{project_id}/gene/tools/cnvkit": jobs,
            "/v2.0/{project_id}/gene/tools/cnvkit/{instance_id}": cancel,
            "/v2.0/{project_id}/gene/tools/cnvkit/{instance_id}/retry": retry,
            "/v2.0/{project_id}/gene/tools/cnvkit/{instance_id}/log": log,
            "/v2.0/{project_id}/gene/jobs/{job_id}": family_cancel,
            "/health": health,
            "/openapi.json": spec,
            **wes_paths,
        },
        "components": {
            "securitySchemes": {"token": {"type": "apiKey", "in": "header",
                                          "name": "X-Auth-Token"},
                                "bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "CnvkitRequest": request,
                "Instance": instance,
                "Error": {"type": "object", "required": ["error_code", "error_msg"],
                          "properties": {"error_code": {"type": "string",
                                                        "pattern": r"^DLI\.\d{4}$"},
                                         "error_msg": {"type": "string"}}},
                "WesError": {"type": "object", "required": ["msg", "status_code"],
                             "properties": {"msg": {"type": "string"},
                                            "status_code": {"type": "integer"}}},
                **defs,
            },
        },
    }


def render() -> str:
    """The document as committed: indented JSON with a final newline."""
    return json.dumps(document(), indent=2) + "\n"


if __name__ == "__main__":
    TARGET.write_text(render())
    sys.stdout.write(f"wrote {TARGET}\n")
