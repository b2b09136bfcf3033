# Everyday commands. `make help` lists them.

PYTHON ?= python

.PHONY: help install testbed test test-chart bench lint manifests image kind/create kind/delete test-kind

help: ## list the targets
	@grep -E '^[a-zA-Z/_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

install: ## install the package with its test dependencies, editable
	$(PYTHON) -m pip install -e '.[test]'

testbed: ## build (or find cached) kube-apiserver, etcd and helm for the tests
	bash scripts/testbed.sh

test: ## run the whole test suite
	$(PYTHON) -m pytest -q

test-chart: ## run only the Helm chart tests
	$(PYTHON) -m pytest tests/chart -q

bench: ## run every benchmark and update docs/benchmarks.md (about 21 minutes; BENCH_ARGS=--smoke for a 10 s check)
	$(PYTHON) -m scripts.bench $(BENCH_ARGS)

lint: ## type-check the package (mypy --strict, configured in pyproject.toml)
	$(PYTHON) -m mypy

manifests: ## render manifests/ from the Helm chart
	bash scripts/render-manifests.sh

image: ## build the container image logstream-kube:dev
	docker build -t logstream-kube:dev .

kind/create: ## create a kind cluster, load the image and install the chart
	bash scripts/kind-setup.sh create

kind/delete: ## delete the kind cluster
	bash scripts/kind-setup.sh delete

test-kind: ## run the integration suite against the kind cluster
	bash scripts/kind-setup.sh test
