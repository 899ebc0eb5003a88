"""Demo and test scaffolding of the checkout, not shipped in the wheel: synthetic cohorts
(`simulate`; `test_data`, the `test` profile's inputs), a local S3 server (`seaweed`), a local
job service (`local_service`) and the `make demo` targets (`demo`)."""
