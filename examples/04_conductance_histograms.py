# %% [markdown]
# # 04 · Conductance histograms from a run's snapshots
#
# A run with devices saves every device's conductance at the start, at the epochs listed in
# `snapshot_epochs` and at the end (`RUN/snapshots/*.pt`). `pcmsim.load_snapshots(run_dir)` reads them:
# per snapshot its tag, epoch, simulated time and, per layer, the conductances `[pairs, 2 (G⁺, G⁻),
# out, in]` in µS. Here we train a small classifier with `hardware_in_loop.train` and draw one panel
# per layer and snapshot.
#
# Run it: `python examples/04_conductance_histograms.py [--quick] [--out runs/examples/04]`.

# %%
import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

import pcmsim  # noqa: E402
from hardware_in_loop import train  # noqa: E402

parser = argparse.ArgumentParser(description="Conductance histograms from a run's snapshots")
parser.add_argument("--quick", action="store_true", help="a short run (what the tests run)")
parser.add_argument("--out", help="folder for the run and the figure (default runs/examples/04[-quick])")
args, _ = parser.parse_known_args()
QUICK = args.quick or os.environ.get("PCMSIM_EXAMPLES_QUICK") == "1"
ROOT = Path(os.environ.get("PCMSIM_EXAMPLES_OUT", "runs/examples"))  # where the examples write
OUT = Path(args.out) if args.out else ROOT / ("04-quick" if QUICK else "04")
torch.set_num_threads(1)

# %% [markdown]
# ## A run with snapshots
# A 64-32-10 perceptron on the 8×8 digits, on `pcm-nandakumar2018` devices, trained through the one
# trainer (the run folder of `pcmsim train`). `snapshot_epochs` adds snapshots between start and end.

# %%
data = pcmsim.load_digits_data(seed=0)
n = 256 if QUICK else len(data.y_train)
torch.manual_seed(0)
software = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
analog, _ = pcmsim.convert(software, device_model="pcm-nandakumar2018", seed=0, t_s=60.0)
epochs = 2 if QUICK else 10
results = train(analog, (data.x_train[:n], data.y_train[:n]), (data.x_test, data.y_test),
                nn.functional.cross_entropy,
                {"epochs": epochs, "lr": 0.01, "batch_size": 32, "snapshot_epochs": [1]},
                out=OUT / "run", resume=True, progress=False)
print(f"{results['n_devices']:,} devices, {results['pulses_set']:,} SET pulses, "
      f"validation loss {results['valid_loss']:.3f}")

# %% [markdown]
# ## Read the snapshots

# %%
snapshots = pcmsim.load_snapshots(OUT / "run")
for snap in snapshots:
    shapes = ", ".join(f"{name}: {list(g.shape)}" for name, g in snap.g_us.items())
    print(f"{snap.tag:>7}: epoch {snap.epoch}, t = {snap.t_s:.0f} s, {shapes}")

# %% [markdown]
# ## One panel per layer and snapshot
# G⁺ and G⁻ of each differential pair drawn separately; the same bins in every panel.

# %%
layers = list(snapshots[0].g_us)
g_max = max(float(s.all_g_us().max()) for s in snapshots)
bins = torch.linspace(0.0, g_max, 61).numpy()
fig, axes = plt.subplots(len(layers), len(snapshots), figsize=(3.2 * len(snapshots), 2.4 * len(layers)),
                         sharex=True, squeeze=False)
for col, snap in enumerate(snapshots):
    for row, name in enumerate(layers):
        ax = axes[row][col]
        g = snap.g_us[name]
        for sign, label in ((0, "G⁺"), (1, "G⁻")):
            ax.hist(g[:, sign].flatten().numpy(), bins=bins, histtype="step", log=True, label=label)
        ax.set_title(f"layer {name}, {snap.tag} (epoch {snap.epoch})", fontsize=9)
        if row == len(layers) - 1:
            ax.set_xlabel("conductance (µS)")
        if col == 0:
            ax.set_ylabel("devices")
axes[0][0].legend(fontsize=8)
fig.tight_layout()
OUT.mkdir(parents=True, exist_ok=True)
figure = OUT / "conductance_histograms.png"
fig.savefig(figure, dpi=120)
plt.close(fig)
print(f"figure: {figure}")
RESULTS = {"results": results, "snapshots": [(s.tag, s.epoch, s.t_s) for s in snapshots], "figure": str(figure)}
