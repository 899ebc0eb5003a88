"""`cnvkit-nf serve`, the job service: its configuration (tokens, projects, roots, limits), the
worker pool, retention, one job API (`job_api`) under two faces (the seed's REST API,
`seed_api`, and GA4GH WES, `wes`; `app` routes a request to its face), the HTTP transport, the
OpenAPI document, and the HTTP client the CLI uses.

May import every other subpackage; none of them imports it (only the CLI does).
"""
