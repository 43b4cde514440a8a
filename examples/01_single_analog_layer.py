# %% [markdown]
# # 01 · A single analog layer
#
# One `pcmsim.AnalogLinear` layer: its weights live on differential pairs of PCM devices
# (`pcm-joshi2020`), its forward pass is an analog read of the crossbar, its backward pass is digital.
# We train it to copy a teacher's weights with the hardware in the loop (Adam proposes ΔW,
# `hil.step()` turns it into SET pulses), then let the devices drift for a year and compensate.
#
# Run it: `python examples/01_single_analog_layer.py [--quick]`.

# %%
import argparse
import os

import torch

import pcmsim
from hardware_in_loop import HardwareInTheLoop

parser = argparse.ArgumentParser(description="A single analog layer trained with the hardware in the loop")
parser.add_argument("--quick", action="store_true", help="a short run (what the tests run)")
args, _ = parser.parse_known_args()
QUICK = args.quick or os.environ.get("PCMSIM_EXAMPLES_QUICK") == "1"
torch.set_num_threads(1)

# %% [markdown]
# ## The layer and its teacher
# The layer's devices are programmed at `t_s = 60 s` (program-and-verify of the device model) to a
# random initialisation (as `nn.Linear`'s, within ±1/√16). The teacher is a fixed 16 → 4 linear map
# in that range: the weight a device pair can hold is bounded by the mapping's scale.

# %%
g = torch.Generator().manual_seed(1)  # not the layer's seed 0: the teacher must differ from its init
teacher = (2 * torch.rand(4, 16, generator=g) - 1) * 0.2  # within the layer's weight range (±1/√16)
layer = pcmsim.AnalogLinear(16, 4, bias=False, device_model="pcm-joshi2020", seed=0, t_s=60.0)
x = torch.randn(256, 16, generator=g)
y = x @ teacher.T
g_us = layer.crossbar.conductances(60.0)  # [pairs, 2 (G⁺, G⁻), out, in], µS
print(f"{layer.crossbar.n_devices} devices {list(g_us.shape)}, mean G {float(g_us.mean()):.2f} µS, "
      f"max {float(g_us.max()):.2f} µS")


def error() -> float:
    """Relative error of the layer's output against the teacher's, on the training inputs."""
    with torch.no_grad():
        return float((layer(x) - y).norm() / y.norm())


initial = error()
print(f"before training: relative output error {initial:.3f}")

# %% [markdown]
# ## Training with the hardware in the loop
# `HardwareInTheLoop` owns the simulated clock: each `hil.step()` advances it by the forward pass,
# the pulse rounds and the host's per-batch overhead.

# %%
optimizer = torch.optim.Adam(layer.parameters(), lr=0.02)
hil = HardwareInTheLoop(layer, optimizer, scheme="mixed-precision", generator=torch.Generator().manual_seed(0))
steps = 40 if QUICK else 400
for _ in range(steps):
    i = torch.randint(0, len(x), (32,), generator=g)
    loss = torch.nn.functional.mse_loss(layer(x[i]), y[i])
    optimizer.zero_grad()
    loss.backward()
    hil.step()  # ΔW of Adam → SET pulses on G⁺ / G⁻
hil.epoch_done()
trained = error()
print(f"after {steps} steps: relative output error {trained:.3f}, SET pulses {hil.totals.pulses_set:,}, "
      f"simulated time {hil.clock.now_s:.1f} s")

# %% [markdown]
# ## A year of drift, with and without global drift compensation
# `pcmsim.set_time` reads the layer at a later simulated time; the devices drift (G ∝ t^−ν).
# `pcmsim.evaluate_over_drift` evaluates a metric at each delay and compensation mode.

# %%
rows = pcmsim.evaluate_over_drift(layer, lambda: {"error": error()}, ["1h", "1d", "1y"], ("none", "global"))
for row in rows:
    print(f"{row['compensation']:>7} after {row['delay']:>3}: relative output error {row['error']:.3f}")
RESULTS = {"initial_error": initial, "trained_error": trained, "pulses_set": hil.totals.pulses_set,
           "drift": rows}
