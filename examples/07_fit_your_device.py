# %% [markdown]
# # 07 · Fitting a model to your own device's measurements
#
# Three CSV files of a lab's measurements (pulse response, drift, read noise) become a device model
# that loads wherever a device-model name does. Here the "lab" is `pcm-nandakumar2018` measured by
# `pcmsim device measure`; with real data, start at step 2 with your own files (columns and units in
# `docs/device-fit.md`). Both steps run the `pcmsim` command line (`python -m hardware_in_loop.cli`).
#
# Run it: `python examples/07_fit_your_device.py [--quick] [--out runs/examples/07]`.

# %%
import argparse
import os
import subprocess
import sys
from pathlib import Path

import torch

import device_models

parser = argparse.ArgumentParser(description="Fit a device model to measurements and use it")
parser.add_argument("--quick", action="store_true", help="a short run (what the tests run)")
parser.add_argument("--out", help="folder for the measurements and the model (default runs/examples/07[-quick])")
args, _ = parser.parse_known_args()
QUICK = args.quick or os.environ.get("PCMSIM_EXAMPLES_QUICK") == "1"
ROOT = Path(os.environ.get("PCMSIM_EXAMPLES_OUT", "runs/examples"))  # where the examples write
OUT = Path(args.out) if args.out else ROOT / ("07-quick" if QUICK else "07")


def pcmsim_cli(*argv: str) -> None:
    """Run `pcmsim ARGV` (the installed command is the same as `python -m hardware_in_loop.cli`)."""
    print("$ pcmsim " + " ".join(argv))
    proc = subprocess.run([sys.executable, "-m", "hardware_in_loop.cli", *argv], capture_output=True, text=True)
    print(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"pcmsim {argv[0]} failed with exit status {proc.returncode}")


# %% [markdown]
# ## 1. Measure (your lab does this step)
# `pulses.csv`: reads after a RESET and after each of 30 SET pulses; `drift.csv`: reads of programmed
# devices over time; `reads.csv`: repeated reads close together.

# %%
measured = OUT / "measured"
pcmsim_cli("device", "measure", "pcm-nandakumar2018", str(measured),
           *(["--n-devices", "200", "--n-pulses", "15"] if QUICK else []))
for name in ("pulses.csv", "drift.csv", "reads.csv"):
    print(name, "|", (measured / name).read_text().splitlines()[1])

# %% [markdown]
# ## 2. Fit
# The fitted model is one JSON file; a report (`my-device.report.md`, with figures) compares the
# data with the model per quantity.

# %%
model_file = OUT / "my-device.json"
pcmsim_cli("device", "fit", str(measured / "pulses.csv"), f"drift={measured / 'drift.csv'}",
           f"read-noise={measured / 'reads.csv'}", "--out", str(model_file), *(["--no-report"] if QUICK else []))

# %% [markdown]
# ## 3. Use it: the fitted model against the device it was measured on
# `device_models.get` takes the file as it takes a name (so do `--device-model`, run configs and sweeps).
# The mean conductance after n SET pulses from RESET, over 2,000 simulated devices of each:

# %%
fitted = device_models.get(str(model_file))
original = device_models.get("pcm-nandakumar2018")
n_devices, n_pulses = 2000, (15 if QUICK else 30)
curves = {}
for label, model in (("measured device", original), ("fitted model", fitted)):
    gen = torch.Generator().manual_seed(1)
    state = model.init_state((n_devices,), generator=gen)
    model.reset(state, None, 0.0, gen)
    mean = []
    for k in range(n_pulses):
        model.set_pulses(state, torch.ones(n_devices, dtype=torch.int32), float(k + 1), gen)
        mean.append(float(model.read(state, float(k + 1), gen, noise=False).mean()))
    curves[label] = mean
print(f"{'pulses':>6} {'measured device (µS)':>21} {'fitted model (µS)':>18}")
for k in (0, 4, 9, n_pulses - 1):
    print(f"{k + 1:>6} {curves['measured device'][k]:>21.3f} {curves['fitted model'][k]:>18.3f}")
RESULTS = {"model_file": str(model_file), "curves": curves}

# %% [markdown]
# ## 4. Train on it
# Any run takes the file as its device model, e.g.
# `pcmsim reproduce jsb-52800 --device-model runs/examples/07/my-device.json --out runs/my-device`.
