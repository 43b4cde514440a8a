# The two commands of the README:
#   make test   set up (virtual environment, pinned torch, aihwkit), type-check (mypy) and run the test suite
#   make demo   set up and run the full 52,800-device reproduction (one to two minutes), printing its results
# Both set up what they need on a fresh machine first (scripts/setup.sh; the aihwkit source
# build is paid once per machine, pip caches it).

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.pcmsim-setup-done
# Data: a sibling ../shared/data when it exists (tests and CI), else the user's cache folder.
SHARED_DATA := $(wildcard $(CURDIR)/../shared/data)
ifneq ($(SHARED_DATA),)
export PCMSIM_DATA ?= $(abspath $(SHARED_DATA))
endif
DEMO_OUT ?= runs/jsb-52800
DEMO_ARGS ?=
# make demo DETERMINISTIC_CPU=1: MKL's most compatible code path and torch's portable (non-AVX) kernels,
# set before torch loads; see docs/install.md for what it costs and what was measured.
DETERMINISTIC_CPU ?=
ifeq ($(DETERMINISTIC_CPU),1)
DEMO_ENV := MKL_CBWR=COMPATIBLE ATEN_CPU_CAPABILITY=default
endif

.PHONY: setup test demo lint docs bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/setup.sh scripts/probe_aihwkit.py
	bash scripts/setup.sh $(VENV)

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) -m pytest -q -p no:cacheprovider -n auto --dist loadfile --no-loadscope-reorder

lint: $(STAMP)
	$(VENV)/bin/ruff check .

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -d site

demo: $(STAMP)
	$(DEMO_ENV) $(PY) -m hardware_in_loop.cli reproduce jsb-52800 $(DEMO_ARGS) --out $(DEMO_OUT)

clean:
	rm -rf $(VENV) runs site
