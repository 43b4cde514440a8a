#!/usr/bin/env bash
# Set up a virtual environment for pcmsim on a fresh machine, repeatably.
#
#   scripts/setup.sh [VENV_DIR]      (default: .venv)
#
# 1. venv + pinned torch (constraints.txt) + pcmsim in editable mode with its dev tools;
# 2. aihwkit: install it, then probe its C++ simulator with a one-step pulsed update on a tiny
#    AnalogLinear. Where the probe fails (the 1.1.0 wheel is built against another torch and
#    answers "weights must be a CPU tensor"), build aihwkit from the sdist against the installed
#    torch. pip keeps the built wheel in its cache, so only the first setup on a machine pays
#    the build (about 6 minutes on 2 cores).
# A stamp file records success so that `make` does not repeat the work.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${1:-$here/.venv}
constraints=$here/constraints.txt
AIHWKIT_SOURCE_VERSION=${AIHWKIT_SOURCE_VERSION:-1.2.0}

log() { printf '[setup] %s\n' "$*" >&2; }

if [ ! -x "$venv/bin/python" ]; then
  log "creating virtual environment $venv"
  python3 -m venv "$venv"
fi
# absolute: the aihwkit source build runs in pip's temporary folder and finds mypy's stubgen
# through PATH, where a relative venv path (make passes .venv) would not resolve
venv=$(cd "$venv" && pwd)
py=$venv/bin/python
pip() { "$py" -m pip --disable-pip-version-check "$@"; }

log "installing torch (pinned)"
pip install -q -c "$constraints" "torch==2.13.0"
# aihwkit first and as a wheel only: a newer aihwkit exists only as an sdist, and pip's isolated
# build of it would pull an unpinned torch with several GB of CUDA packages.
log "installing aihwkit (wheel)"
pip install -q -c "$constraints" --only-binary aihwkit "aihwkit>=1.1.0"

probe() { "$py" "$here/scripts/probe_aihwkit.py"; }

if probe; then
  log "aihwkit C++ simulator works"
else
  log "aihwkit's C++ simulator failed the probe: building aihwkit $AIHWKIT_SOURCE_VERSION from source"
  if ! dpkg -s libopenblas-dev >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas-dev >/dev/null
    else
      log "libopenblas-dev is missing: install it (sudo apt-get install libopenblas-dev) and rerun"
      exit 1
    fi
  fi
  pip install -q -c "$constraints" "pybind11>=3.0.1" "scikit-build>=0.18.1" "cmake>=4.2.1" ninja mypy
  # The build calls mypy's `stubgen` by name: put the venv's bin first on PATH.
  PATH="$venv/bin:$PATH" MAKEFLAGS="-j$(nproc)" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    pip install -q -c "$constraints" --no-build-isolation --no-binary aihwkit "aihwkit==$AIHWKIT_SOURCE_VERSION"
  probe || { log "aihwkit built from source still fails the probe"; exit 1; }
  log "aihwkit $AIHWKIT_SOURCE_VERSION built from source; C++ simulator works"
fi
log "installing pcmsim (editable) with its dev tools"
pip install -q -c "$constraints" -e "$here[dev]"
touch "$venv/.pcmsim-setup-done"
