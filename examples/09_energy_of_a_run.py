# %% [markdown]
# # 09 · The energy of a run
#
# A pcm run counts what its hardware did (analog matrix-vector products, DAC and ADC conversions,
# SET and RESET pulses, digital operations, memory traffic); `pcmsim cost RUN` turns the counts into
# energy, latency, TOPS/W and area with a hardware profile of sourced constants, next to three
# digital baselines computed with the same digital cost model. Details: `docs/energy.md`.
#
# Run it: `python examples/09_energy_of_a_run.py [--quick] [--out runs/examples/09]`.

# %%
import argparse
import os
import subprocess
import sys
from pathlib import Path

from hardware_in_loop import load_config, run_training

parser = argparse.ArgumentParser(description="Train a small pcm run and estimate its energy")
parser.add_argument("--quick", action="store_true", help="a short run (what the tests run)")
parser.add_argument("--out", help="the run folder (default runs/examples/09[-quick])")
args, _ = parser.parse_known_args()
QUICK = args.quick or os.environ.get("PCMSIM_EXAMPLES_QUICK") == "1"
ROOT = Path(os.environ.get("PCMSIM_EXAMPLES_OUT", "runs/examples"))  # where the examples write
OUT = Path(args.out) if args.out else ROOT / ("09-quick" if QUICK else "09")

# %% [markdown]
# ## A run with the hardware in the loop
# The LIF classifier on the 8×8 digits, on `pcm-nandakumar2018` devices (a config object here; a
# config file works the same: `load_config("configs/digits-lif.json")`).

# %%
config = load_config({
    "task": "classification", "dataset": "digits", "encoder": "tile", "steps": 10,
    "network": {"layers": [64, 128, 10], "neuron": "lif", "surrogate": "flat", "readout": "integrator"},
    "flavour": "pcm", "device_model": "pcm-nandakumar2018", "lr": 0.003, "batch_size": 32,
    "epochs": 1 if QUICK else 10, "num_threads": 1, **({"train_limit": 160, "test_limit": 64} if QUICK else {}),
})
results = run_training(config, OUT, resume=True, progress=False)
print(f"test accuracy {results['test_accuracy']:.3f}, {results['pulses_set']:,} SET pulses")
print("counts:", {k: v for k, v in results["hardware_counts"].items() if isinstance(v, int | float)})

# %% [markdown]
# ## Its energy, latency and area
# `pcmsim cost RUN` prints the table and draws `RUN/plots/cost.png`; `--cost-profile` takes another
# profile (see `configs/cost_profiles/`).

# %%
proc = subprocess.run([sys.executable, "-m", "hardware_in_loop.cli", "cost", str(OUT)], capture_output=True, text=True)
print(proc.stdout + proc.stderr)
# results.json holds the same estimate with the default profile (results["cost"]); its keys:
print("results['cost']:", ", ".join(sorted(results["cost"])))
RESULTS = {"results": results, "cost_status": proc.returncode, "cost_output": proc.stdout}
