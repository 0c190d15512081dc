# pocketkube: `make run` starts a cluster, `make test` runs the test suite.
# Both work on a fresh Debian 12 machine as root: the set-up installs only what is missing, so
# a second run is fast and needs no network.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
# Touched after a successful install; pyproject.toml being newer triggers a reinstall.
STAMP := $(VENV)/.pocketkube-installed
APT_PACKAGES := etcd-server python3 python3-venv
export DEBIAN_FRONTEND := noninteractive

.PHONY: run test lint setup system-packages kubectl

run: setup
	$(VENV)/bin/pocketkube start

test: setup
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check pocketkube tests

setup: system-packages kubectl $(STAMP)

# Debian packages the cluster and its tests need, installed only when what they provide is
# absent: etcd for the etcd datastore; runc, conmon, catatonit (the pause process), the CNI
# reference plugins, iptables and iproute2 for the node agent's containers and pod network;
# conntrack for the service proxy's stale UDP flow cleanup;
# skopeo for image pulls and loads; busybox-static for the built-in busybox image.
system-packages:
	@missing=""; \
	command -v etcd >/dev/null 2>&1 || missing="$$missing etcd-server"; \
	command -v runc >/dev/null 2>&1 || missing="$$missing runc"; \
	command -v conmon >/dev/null 2>&1 || missing="$$missing conmon"; \
	command -v catatonit >/dev/null 2>&1 || missing="$$missing catatonit"; \
	test -x /usr/lib/cni/bridge || missing="$$missing containernetworking-plugins"; \
	command -v skopeo >/dev/null 2>&1 || missing="$$missing skopeo"; \
	command -v umoci >/dev/null 2>&1 || missing="$$missing umoci"; \
	{ test -x /bin/busybox && ! ldd /bin/busybox >/dev/null 2>&1; } || missing="$$missing busybox-static"; \
	command -v iptables >/dev/null 2>&1 || missing="$$missing iptables"; \
	command -v conntrack >/dev/null 2>&1 || missing="$$missing conntrack"; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	command -v $(PYTHON) >/dev/null 2>&1 || missing="$$missing python3"; \
	$(PYTHON) -c 'import ensurepip, venv' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then \
			echo "pocketkube needs these Debian packages:$$missing (install them as root)" >&2; \
			exit 1; \
		fi; \
		echo "Installing$$missing"; \
		apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	fi

kubectl:
	@command -v kubectl >/dev/null 2>&1 || { \
		echo "kubectl was not found on PATH. pocketkube is driven by the real kubectl (1.32):" >&2; \
		echo "install it (https://kubernetes.io/docs/tasks/tools/) and run make again." >&2; \
		exit 1; }

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $@
