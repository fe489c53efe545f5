# kubetune developer commands. `make help` lists them.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

.PHONY: help venv system images quickstart test test-unit test-tools test-cluster test-e2e chaos cluster \
	dev-cluster bench-operator lint crd

help:  ## list the targets
	@grep -E '^[A-Za-z0-9._-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# The images' pins constrain the dev install too, so the tests run what the images ship.
# Three distributions, editable: the contract, the trainer, and the operator with the CLI.
# uv installs them (pip stays in the venv for the tests that run it): from its cache in
# ~/.cache/uv a fresh venv takes seconds, where pip fetched every wheel again (~2 min).
UV_VERSION := 0.13.9
$(VENV)/.installed: pyproject.toml contract/pyproject.toml trainer-image/pyproject.toml \
		trainer-image/constraints.txt deploy/operator-constraints.txt
	python3 -m venv $(VENV)
	$(PIP) install -q uv==$(UV_VERSION)
	$(VENV)/bin/uv pip install -q --python $(PYTHON) --upgrade-package pip pip \
		-e ./contract -e ./trainer-image -e '.[operator,trainer,dev]' \
		-c trainer-image/constraints.txt -c deploy/operator-constraints.txt
	touch $@

venv: $(VENV)/.installed  ## create the virtual environment with every extra

quickstart: venv  ## train a LoRA adapter on CPU from examples/quickstart.yaml (no cluster, no GPU)
	$(VENV)/bin/kubetune run examples/quickstart.yaml

system: venv  ## Debian packages (prometheus, podman, ...) and the test binaries and peers (cached)
	PYTHON=$(PYTHON) bash .ci/install-system.sh

images: venv system  ## build the trainer and operator images (podman, cached by input hash) for the real node
	$(PYTHON) -m devenv images

test: venv system images  ## run the whole test suite (control plane, real node, S3; needs root)
	$(PYTHON) -m pytest

test-unit: venv  ## run the unit tests only: Python alone (no cluster, S3, training, tools or network)
	$(PYTHON) -m pytest tests/unit

test-tools: venv system  ## tests that run promtool, the pinned helm, argocd-health or pip (tests/tools)
	$(PYTHON) -m pytest tests/tools

test-cluster: venv system  ## cluster, S3 and Prometheus tests only
	$(PYTHON) -m pytest tests/cluster

test-e2e: venv system images  ## end to end on the real node: chart, operator and trainer images, S3
	$(PYTHON) -m pytest tests/chaos tests/chart_upgrade tests/day_two tests/dev tests/e2e

chaos: venv system images  ## the seeded chaos run at full size, 50 lifecycles (KUBETUNE_CHAOS_SEED=N replays a run)
	KUBETUNE_CHAOS_KWOK_JOBS=47 KUBETUNE_CHAOS_REAL_STEPS=6000 \
		$(PYTHON) -m pytest tests/chaos/test_chaos.py -s -p no:cacheprovider

dev-cluster: venv system images  ## control plane + real node + S3 + operator; prints KUBECONFIG and S3 settings (Ctrl-C stops)
	$(PYTHON) -m devenv dev

cluster: venv system  ## a control plane with fake GPU nodes until Ctrl-C (prints the KUBECONFIG export)
	$(PYTHON) -m devenv cluster

bench-operator: venv system  ## operator cost per job vs a raw client: 1,000-job burst, steady arrival, progress (docs/operator-performance.md)
	$(PYTHON) -m bench.operator_scale

# mypy's cache lives with the other caches, outside the checkout: a fresh clone checks in
# seconds instead of re-reading torch and transformers (~50 s). mypy re-checks any entry
# whose source changed, so a shared cache never hides an error.
MYPY_CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kubetune/mypy

lint: venv  ## ruff, mypy, and the import contracts (operator and trainer meet only in kubetune_contract)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	MYPY_CACHE_DIR=$(MYPY_CACHE_DIR) $(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

crd: venv  ## regenerate both CRDs in crds/ and charts/kubetune/templates/crds/, and the admission rules
	$(VENV)/bin/kubetune crd > crds/finetunejob.yaml
	$(VENV)/bin/kubetune crd --kind FineTuneJobPolicy > crds/finetunejobpolicy.yaml
	$(VENV)/bin/kubetune crd --chart-template > charts/kubetune/templates/crds/finetunejob.yaml
	$(VENV)/bin/kubetune crd --chart-template --kind FineTuneJobPolicy > charts/kubetune/templates/crds/finetunejobpolicy.yaml
	$(VENV)/bin/kubetune crd --admission-rules > charts/kubetune/admission/rules.yaml
