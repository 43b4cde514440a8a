# %% [markdown]
# # 03 · Swapping device models
#
# The same network, the same data and the same seed on every registered device model: how many
# SET pulses training takes, how accurate the network is, and what a day of drift costs. A device
# model is a name (`device_models.available()`), optionally with parameter overrides
# (`device_params`), or a fitted device's JSON file (example 07).
#
# Run it: `python examples/03_swap_device_models.py [--quick]`.

# %%
import argparse
import os

import torch
from torch import nn

import device_models
import pcmsim
from hardware_in_loop import HardwareInTheLoop

parser = argparse.ArgumentParser(description="One network on every device model")
parser.add_argument("--quick", action="store_true", help="a short run (what the tests run)")
args, _ = parser.parse_known_args()
QUICK = args.quick or os.environ.get("PCMSIM_EXAMPLES_QUICK") == "1"
torch.set_num_threads(1)

# %% [markdown]
# ## Data and the software network
# The 8×8 digits (scikit-learn), and a 64-32-10 perceptron with the same initial weights for every
# device model.

# %%
data = pcmsim.load_digits_data(seed=0)
torch.manual_seed(0)
software = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
models = ["pcm-nandakumar2018", "pcm-joshi2020"] if QUICK else \
    [m for m in device_models.available() if m != "empirical"]  # empirical: the base of fitted files
steps = 20 if QUICK else 300
print("device models:", ", ".join(device_models.available()))

# %% [markdown]
# ## The same training on each
# `pcmsim.convert` programs a copy of the software network onto crossbars of the chosen devices;
# `HardwareInTheLoop` trains it; `pcmsim.evaluate_over_drift` reads it a day later.

# %%
rows = []
for name in models:
    analog, report = pcmsim.convert(software, device_model=name, seed=0, t_s=60.0)
    optimizer = torch.optim.Adam(analog.parameters(), lr=0.01)
    hil = HardwareInTheLoop(analog, optimizer, scheme="mixed-precision", generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        i = torch.randint(0, len(data.y_train), (64,), generator=g)
        loss = nn.functional.cross_entropy(analog(data.x_train[i]), data.y_train[i])
        optimizer.zero_grad()
        loss.backward()
        hil.step()
    hil.epoch_done()

    def accuracy(model: nn.Module = analog) -> dict[str, float]:
        with torch.no_grad():
            return {"accuracy": float((model(data.x_test).argmax(-1) == data.y_test).float().mean())}

    drift = pcmsim.evaluate_over_drift(analog, accuracy, ["1d"], ("none", "global"))
    at = {(r["compensation"], r["delay"]): r["accuracy"] for r in drift}
    rows.append({"device_model": name, "devices": report.n_devices, "pulses_set": hil.totals.pulses_set,
                 "accuracy": at[("none", "0s")], "after_1d": at[("none", "1d")],
                 "after_1d_global": at[("global", "1d")]})

# %%
print(f"{'device model':<24} {'devices':>8} {'SET pulses':>11} {'test acc.':>9} {'1 day':>6} {'1 day, global':>13}")
for r in rows:
    print(f"{r['device_model']:<24} {r['devices']:>8,} {r['pulses_set']:>11,} {r['accuracy']:>9.3f} "
          f"{r['after_1d']:>6.3f} {r['after_1d_global']:>13.3f}")
RESULTS = rows
