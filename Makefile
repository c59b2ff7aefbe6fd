# genai-cdk developer entry points. `make demo` and `make test` set everything up first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONSTRAINTS := requirements/constraints.txt
PY_STAMP := $(VENV)/.installed
# GPTQ conflicts with the main stack (gptqmodel pins numpy 2.2 and builds from source): own venv.
GPTQ_VENV := .venv-gptq
GPTQ_STAMP := $(GPTQ_VENV)/.installed
# The SageMaker Python SDK v3 (`genai train job`) needs rich<15, protobuf<7, pyarrow<26 and graphql-core<3.3,
# four of the main pins: own venv, with the main pins but those (about a minute, 1 GB).
SAGEMAKER_VENV := .venv-sagemaker
SAGEMAKER_STAMP := $(SAGEMAKER_VENV)/.installed
SAGEMAKER_PINS := "sagemaker==3.27.0" "sagemaker-core==2.27.0" "sagemaker-train==1.27.0" "sagemaker-serve==1.27.0" \
	"sagemaker-mlops==1.27.0" "rich==14.3.4" "protobuf==6.33.6" "pyarrow==25.0.1" "graphql-core==3.2.14"
NODE_STAMP := node_modules/.installed

export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export AWS_EC2_METADATA_DISABLED := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup setup-gptq setup-sagemaker demo test bench lint clean

## setup: .venv with the project and its core, runtime, lambdas and dev extras; the CDK CLI in node_modules
setup: $(PY_STAMP) $(NODE_STAMP)

# torch first, pinned: the CPU build on disk, never a multi-GB CUDA download pulled in by a range.
$(PY_STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade "pip>=24" "setuptools>=69" wheel
	$(PIP) install --quiet -c $(CONSTRAINTS) torch==2.13.0
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[runtime,lambdas,dev]"
	$(PIP) check
	touch $@

## setup-gptq: the separate environment `genai optimize quantize --method gptq` runs in
setup-gptq: $(GPTQ_STAMP)

$(GPTQ_STAMP): pyproject.toml requirements/gptq-constraints.txt
	test -x $(GPTQ_VENV)/bin/python || $(PYTHON) -m venv $(GPTQ_VENV)
	$(GPTQ_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24" "setuptools>=77" wheel
	$(GPTQ_VENV)/bin/python -m pip install --quiet -c requirements/gptq-constraints.txt torch==2.13.0
	$(GPTQ_VENV)/bin/python -m pip install --quiet -c requirements/gptq-constraints.txt \
		"gptqmodel==7.6.0" "transformers==5.24.0" "pydantic>=2.9,<3" "pyyaml>=6,<7"
	$(GPTQ_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

## setup-sagemaker: the separate environment `genai train job` (SageMaker Python SDK v3) runs in
setup-sagemaker: $(SAGEMAKER_STAMP)

$(SAGEMAKER_STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(SAGEMAKER_VENV)/bin/python || $(PYTHON) -m venv $(SAGEMAKER_VENV)
	$(SAGEMAKER_VENV)/bin/python -m pip install --quiet --upgrade "pip>=24" "setuptools>=77" wheel
	grep -v -E '^(rich|protobuf|pyarrow|graphql-core)==' $(CONSTRAINTS) > $(SAGEMAKER_VENV)/constraints.txt
	$(SAGEMAKER_VENV)/bin/python -m pip install --quiet -c $(SAGEMAKER_VENV)/constraints.txt $(SAGEMAKER_PINS) \
		"pydantic>=2.9,<3" "pyyaml>=6,<7"
	$(SAGEMAKER_VENV)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## demo: synthesize every environment with the CDK CLI, run cdk-nag and cfn-lint, print a summary
demo: setup
	$(PY) -m cdk_app.demo

## test: the whole test suite (the GPTQ and SageMaker SDK environments included)
test: setup setup-gptq setup-sagemaker
	GENAI_GPTQ_PYTHON=$(CURDIR)/$(GPTQ_VENV)/bin/python GENAI_SAGEMAKER_PYTHON=$(CURDIR)/$(SAGEMAKER_VENV)/bin/python \
		$(PY) -m pytest -n 2  # two workers: CI has 2 cores; every test is worker-safe (own ports, tmp dirs)

## bench: run every benchmark; results land in bench/results/*.json
bench: setup
	for b in synth_speed server_overhead serve_throughput quantization train_overhead rag align; do PYTHONPATH=. $(PY) -m bench.$$b || exit 1; done

## lint: ruff's lint rules and its formatting check over the whole tree, then mypy over constructs/ and runtime/
# ([tool.mypy] in pyproject.toml): what .ci/run runs before the tests
lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

clean:
	rm -rf cdk.out .pytest_cache $(GPTQ_VENV) $(SAGEMAKER_VENV)
