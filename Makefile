# One entry point for people and CI. `make bootstrap` and `make test` set up what is missing first.
# Debian's own Python when there is one: a venv made from it is usable by every user (the
# unprivileged-build test runs the project as one), unlike one made from a Python under /root.
PYTHON  ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
VENV    := .venv
PY      := $(VENV)/bin/python
PROFILE ?= mini
STAGE   ?=
PYTEST_ARGS ?=

.PHONY: setup host venv bootstrap stage0 test test-fast fetch explore clean
.DEFAULT_GOAL := bootstrap

setup: host venv

host:
	$(PYTHON) -m serpentlib.build.hostsetup $(TEST_PACKAGES)

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name serpentlib --display-name "serpentlib ($(VENV))"
	touch $@

bootstrap: setup
	$(VENV)/bin/serpent run --profile $(PROFILE) $(if $(STAGE),--stage $(STAGE),) $(if $(WORK_DIR),--work-dir $(WORK_DIR),) $(if $(RUN_DIR),--run-dir $(RUN_DIR),)

stage0: setup
	$(VENV)/bin/serpent stage0 --profile $(PROFILE)

fetch: setup
	$(VENV)/bin/serpent fetch --profile $(PROFILE)

# explore.ipynb live in JupyterLab (DASHBOARD=1: as a Voila dashboard), on 127.0.0.1; prints the URL.
explore: venv
	$(VENV)/bin/serpent explore $(if $(DB),--db $(DB),) $(if $(DASHBOARD),--dashboard,)

# The report tests open index.html in a real browser; the Debian 13 host test makes its root with
# debootstrap; the libc-support and libwildebeest tests compare with the host's glibc through its clang.
test: TEST_PACKAGES = chromium debootstrap clang libclang-rt-dev
test: setup
	$(VENV)/bin/pytest -ra --durations=15 $(PYTEST_ARGS)

test-fast: venv
	$(VENV)/bin/pytest -ra -m "not build" $(PYTEST_ARGS)

clean:
	rm -rf work runs
