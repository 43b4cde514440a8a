#!/usr/bin/env bash
# The GPU measurements of BENCHMARKS.md, as one script for one session on a GPU machine:
#
#   bash bench/gpu_session.sh OUT_DIR [DATA_DIR]
#
# Runs, each under its own time limit so that one failure leaves the others' results:
#   1. the tests that need CUDA (tests/test_cuda.py, tests/test_fused.py);
#   2. bench/scale.py --device cuda up to ~10⁹ devices (2·23170² pairs), each size in its own process;
#   3. bench/epoch.py --device cuda (FP32 and pcmsim HIL on the GPU; aihwkit's simulator is CPU-only here);
#   4. the full 52,800-device reproduction on CUDA (pcmsim reproduce jsb-52800 --device cuda).
# Writes OUT_DIR/log.txt (everything printed) and OUT_DIR/results.tar.gz (the JSON results and the
# reproduction's results.json / timing.json). Needs python3 with torch (CUDA), numpy, scipy,
# matplotlib, numba and pytest; pcmsim runs from the checkout (PYTHONPATH), nothing is installed.
# Time: at most 9 minutes (the parts' limits).
set -u
OUT=${1:?usage: bench/gpu_session.sh OUT_DIR [DATA_DIR]}
if [ -n "${2:-}" ]; then export PCMSIM_DATA="$2"; fi
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PCMSIM_OFFLINE=1
mkdir -p "$OUT" "$OUT/r"
LOG="$OUT/log.txt"
part() { echo; echo "=== $1 ($(date -u +%H:%M:%S))"; }
{
  part "machine"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$PY" -c "import torch, numba, sys; print(sys.version.split()[0], 'torch', torch.__version__, 'numba', numba.__version__, torch.cuda.get_device_name(0))"
  nproc
  part "tests needing CUDA"
  timeout 80 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_fused.py -rs 2>&1 | tail -25
  part "scale benchmark on CUDA"
  timeout 130 "$PY" bench/scale.py --device cuda --sizes 1024,4096,16384,23170 --steps 3 --no-ten-million \
    --out "$OUT/r/scale_cuda.json" 2>&1 | tail -25
  part "epoch benchmark on CUDA"
  timeout 100 "$PY" bench/epoch.py --device cuda --threads 1 --epochs 3 --flavours fp32,pcm \
    --out "$OUT/r/epoch_cuda.json" 2>&1 | tail -12
  part "reproduction on CUDA"
  time (timeout 220 "$PY" -m hardware_in_loop.cli reproduce jsb-52800 --device cuda --out "$OUT/repro" --quiet 2>&1 | tail -40)
  for f in results.json experiment.json fp32/timing.json hil/timing.json; do
    [ -f "$OUT/repro/$f" ] && cp "$OUT/repro/$f" "$OUT/r/repro_${f//\//_}"
  done
  part "done"
} 2>&1 | tee "$LOG"
tar -C "$OUT/r" -czf "$OUT/results.tar.gz" . && rm -rf "$OUT/r" "$OUT/repro"
