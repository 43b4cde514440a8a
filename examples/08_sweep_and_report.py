# %% [markdown]
# # 08 · A sweep and its report
#
# A study is a sweep: a base config, axes over any of its fields, and seeds. `run_sweep` runs every
# point (one ordinary run folder each) on a Dask cluster, resumably, and writes the mean, standard
# deviation and 95 % interval over seeds of every setting; `pcmsim sweep-report` prints the table and
# draws the plots. The same from the command line: `pcmsim sweep FILE.json --out DIR`.
#
# Run it: `python examples/08_sweep_and_report.py [--quick] [--out runs/examples/08]`.

# %%
import argparse
import os
import subprocess
import sys
from pathlib import Path

from hardware_in_loop import run_sweep

parser = argparse.ArgumentParser(description="Two device models × seeds on the digits, and the report")
parser.add_argument("--quick", action="store_true", help="a short run (what the tests run)")
parser.add_argument("--out", help="the sweep folder (default runs/examples/08[-quick])")
args, _ = parser.parse_known_args()
QUICK = args.quick or os.environ.get("PCMSIM_EXAMPLES_QUICK") == "1"
ROOT = Path(os.environ.get("PCMSIM_EXAMPLES_OUT", "runs/examples"))  # where the examples write
OUT = Path(args.out) if args.out else ROOT / ("08-quick" if QUICK else "08")

# %% [markdown]
# ## The sweep
# The base is a config object (it may also be a config file or a named experiment such as
# `jsb-52800`); here the LIF classifier of Gerum & Schilling on the 8×8 digits, in the `pcm` flavour.
# One axis (the device model) × seeds.

# %%
sweep = {
    "name": "digits-devices",
    "description": "The digits LIF classifier on two device models",
    "base": {
        "task": "classification", "dataset": "digits", "encoder": "tile", "steps": 10,
        "network": {"layers": [64, 128, 10], "neuron": "lif", "surrogate": "flat", "readout": "integrator"},
        "flavour": "pcm", "update_scheme": "mixed-precision", "lr": 0.003, "batch_size": 32,
        "epochs": 1 if QUICK else 10, "valid_fraction": 0.2, "num_threads": 1, "drift_times": ["1d"],
        **({"train_limit": 160, "test_limit": 64} if QUICK else {}),
    },
    "axes": {"device_model": ["pcm-nandakumar2018", "pcm-joshi2020"]},
    "seeds": 2 if QUICK else 5,
}
# workers=0: the points one after another in this process; None: a local Dask cluster, one worker a core
summary = run_sweep(sweep, OUT, workers=0 if QUICK else None, progress=False)
selected = summary.get("selected")
print(f"{len(summary['settings'])} settings; selected: {selected['label'] if selected else 'none'}")

# %% [markdown]
# ## The report
# `summary.csv` / `summary.json` hold one row per setting; the selected setting has the best mean
# validation metric (the test metric never takes part).

# %%
report = subprocess.run([sys.executable, "-m", "hardware_in_loop.cli", "sweep-report", str(OUT),
                         *(["--no-plots"] if QUICK else [])], capture_output=True, text=True)
print(report.stdout + report.stderr)
print("files:", ", ".join(sorted(p.name for p in OUT.iterdir())))
RESULTS = {"summary": summary, "report_status": report.returncode}
