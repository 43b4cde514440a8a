# %% [markdown]
# # 05 · Drift and its compensation
#
# A PCM device's conductance decays after programming, `G(t) = G₀·(t/t₀)^−ν`, with ν different from
# device to device: the network's weights shrink and scatter. Here a network trained in software is
# programmed onto PCM devices (`pcmsim.convert`) and read from a minute to a year later, with no
# compensation, with one global factor per layer (`global`), and with one per output column
# (`per-column`), each measured from the devices' own reference readout (`pcmsim.calibrate`).
#
# Run it: `python examples/05_drift_and_compensation.py [--quick] [--out runs/examples/05]`.

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

parser = argparse.ArgumentParser(description="Drift and drift compensation of a network on PCM")
parser.add_argument("--quick", action="store_true", help="a short run (what the tests run)")
parser.add_argument("--out", help="folder for the figure (default runs/examples/05[-quick])")
args, _ = parser.parse_known_args()
QUICK = args.quick or os.environ.get("PCMSIM_EXAMPLES_QUICK") == "1"
ROOT = Path(os.environ.get("PCMSIM_EXAMPLES_OUT", "runs/examples"))  # where the examples write
OUT = Path(args.out) if args.out else ROOT / ("05-quick" if QUICK else "05")
torch.set_num_threads(1)

# %% [markdown]
# ## Train in software

# %%
data = pcmsim.load_digits_data(seed=0)
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
g = torch.Generator().manual_seed(0)
for _ in range(100 if QUICK else 1000):
    i = torch.randint(0, len(data.y_train), (64,), generator=g)
    loss = nn.functional.cross_entropy(net(data.x_train[i]), data.y_train[i])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def metrics(model: nn.Module) -> dict[str, float]:
    """Test accuracy, and test cross-entropy (it sees the logits' scale, which drift shrinks)."""
    with torch.no_grad():
        logits = model(data.x_test)
    return {"accuracy": float((logits.argmax(-1) == data.y_test).float().mean()),
            "loss": float(nn.functional.cross_entropy(logits, data.y_test))}


software = metrics(net)
print(f"software: test accuracy {software['accuracy']:.3f}, test loss {software['loss']:.3f}")

# %% [markdown]
# ## Program it onto PCM devices and let them drift
# `pcm-joshi2020` is IBM's statistical PCM model (aihwkit's `PCMLikeNoiseModel`): programming noise,
# drift with a ν that depends on the programmed conductance, read noise that grows with time.

# %%
analog, report = pcmsim.convert(net, device_model="pcm-joshi2020", seed=0, t_s=60.0)
print(report.table())
delays = ["1min", "1h", "1d", "1y"] if QUICK else ["1min", "10min", "1h", "10h", "1d", "10d", "1y"]
rows = pcmsim.evaluate_over_drift(analog, lambda: metrics(analog), delays, ("none", "global", "per-column"))
for row in rows:
    print(f"{row['compensation']:>10} after {row['delay']:>5}: test accuracy {row['accuracy']:.3f}, "
          f"test loss {row['loss']:.3f}")

# %% [markdown]
# ## What drift does to the weights
# `pcmsim.set_time` moves every analog layer to a later simulated time; `read_weights()` is what the
# devices hold then (× the layer's compensation, `none` here).

# %%
layer = pcmsim.analog_layers(analog)[0]
pcmsim.compensate(analog, "none")
for label, t_s in (("programmed", 60.0), ("1 day", 60.0 + 86_400.0), ("1 year", 60.0 + 365 * 86_400.0)):
    pcmsim.set_time(analog, t_s)
    w = layer.read_weights()
    print(f"{label:>10}: mean |W| of layer 0 = {float(w.abs().mean()):.4f}")

# %% [markdown]
# ## The figure: test loss and accuracy against time, axes zoomed to the data
# The argmax of a classifier does not care about a common scale of its logits, so accuracy moves
# little; the cross-entropy sees the shrinking weights, and compensation restores them.

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for ax, key, label in zip(axes, ("loss", "accuracy"), ("test cross-entropy", "test accuracy")):
    for mode, style in (("none", "o-"), ("global", "s--"), ("per-column", "^:")):
        pts = [(max(r["delay_s"], 1.0), r[key]) for r in rows if r["compensation"] == mode]
        ax.plot(*zip(*pts), style, label=f"compensation: {mode}")
    ax.axhline(software[key], color="k", lw=0.8, label="software")
    values = [r[key] for r in rows] + [software[key]]
    pad = max(0.005, 0.1 * (max(values) - min(values)))
    ax.set(xscale="log", xlabel="time since programming (s; 0 drawn at 1 s)", ylabel=label,
           ylim=(min(values) - pad, max(values) + pad))
    ax.grid(alpha=0.3, which="both")
axes[0].legend(fontsize=8)
fig.suptitle("8×8 digits on pcm-joshi2020", fontsize=10)
fig.tight_layout()
OUT.mkdir(parents=True, exist_ok=True)
figure = OUT / "accuracy_over_drift.png"
fig.savefig(figure, dpi=120)
plt.close(fig)
print(f"figure: {figure}")
RESULTS = {"software": software, "drift": rows, "figure": str(figure)}
