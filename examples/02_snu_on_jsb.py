# %% [markdown]
# # 02 · The SNU network on JSB Chorales, from Python
#
# The music-prediction task of Woźniak et al. (Nat. Mach. Intell. 2, 325, 2020): an 88-150-88
# network of Spiking Neural Units predicts the next chord of a Bach chorale. Here it is trained
# twice through the one trainer, in software (FP32) and on PCM crossbars with the hardware in the
# loop (52,800 devices), from the same config file. `pcmsim reproduce jsb-52800` is the full
# experiment; this example is its Python skeleton on a subset.
#
# Needs the JSB Chorales data in `$PCMSIM_DATA` (or `~/.cache/pcmsim/data`).
#
# Run it: `python examples/02_snu_on_jsb.py [--quick] [--out runs/examples/02]`.

# %%
import argparse
import os
import sys
from pathlib import Path

import pcmsim
from hardware_in_loop import load_config, run_training

parser = argparse.ArgumentParser(description="The SNU network on JSB Chorales, FP32 and on PCM")
parser.add_argument("--quick", action="store_true", help="a short run (what the tests run)")
parser.add_argument("--out", help="folder for the two runs (default runs/examples/02[-quick])")
args, _ = parser.parse_known_args()
QUICK = args.quick or os.environ.get("PCMSIM_EXAMPLES_QUICK") == "1"
ROOT = Path(os.environ.get("PCMSIM_EXAMPLES_OUT", "runs/examples"))  # where the examples write
OUT = Path(args.out) if args.out else ROOT / ("02-quick" if QUICK else "02")

try:  # the data are read, never downloaded, by this example
    pcmsim.load_dataset("jsb", "train", download=False)
except (OSError, ValueError) as exc:
    print(f"This example needs the JSB Chorales data in $PCMSIM_DATA or ~/.cache/pcmsim/data: {exc}")
    sys.exit(0)

# %% [markdown]
# ## One config, two flavours
# `load_config` reads and checks a config file; `replace` changes fields and checks them again.
# The `pcm` flavour puts both layers on crossbars of `pcm-nandakumar2018` devices.

# %%
# the repository's configs/ folder, from its root or from examples/notebooks/
found = [d / "configs" / "jsb-snu-fp32.json" for d in (Path.cwd(), *Path.cwd().parents)]
base = load_config(next((f for f in found if f.is_file()), found[0]))  # a missing file: one line
size = {"epochs": 1, "max_train_sequences": 64, "max_eval_sequences": 8} if QUICK else {"epochs": 10}
fp32 = base.replace(name="jsb fp32", num_threads=1, **size)
pcm = base.replace(name="jsb pcm", flavour="pcm", device_model="pcm-nandakumar2018",
                   crossbar={"weight_scale": 0.06}, drift_times=["1h", "1d"], num_threads=1, **size)

# %% [markdown]
# ## Train both
# Each run writes one folder: config, metrics per epoch, checkpoints, snapshots (pcm), results.

# %%
results = {}
for config in (fp32, pcm):
    run_dir = OUT / config.flavour
    # resume=True: a rerun continues the run's checkpoint (a finished run returns its results)
    results[config.flavour] = run_training(config, run_dir, resume=True, progress=False)
    r = results[config.flavour]
    print(f"{config.flavour:>5}: test NLL {r['test_nll']:.3f} nats per time step after {r['epochs']} epoch(s)"
          + (f", {r['n_devices']:,} devices, {r['pulses_set']:,} SET pulses" if config.flavour == "pcm" else ""))

# %% [markdown]
# ## After training: drift
# The pcm run evaluated its test NLL after each delay, with and without global drift compensation.

# %%
for row in results["pcm"]["drift"]:
    print(f"{row['compensation']:>7} after {row['delay']:>3}: test NLL {row['nll']:.3f}")
RESULTS = results
