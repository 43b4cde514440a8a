# %% [markdown]
# # 06 · Converting an snnTorch network
#
# `pcmsim.convert` puts the `nn.Linear` / `nn.Conv*` layers of any PyTorch model (here an snnTorch
# network of leaky integrate-and-fire neurons) on PCM crossbars; snnTorch keeps running the neurons
# and the time loop. The converted network trains with the hardware in the loop and round-trips
# through NIR (`pcmsim.nir.export` / `pcmsim.nir.load`). The longer version is the tutorial,
# `docs/tutorial_snntorch.py`.
#
# Needs snnTorch (`pip install -e .[dev]`).
#
# Run it: `python examples/06_convert_snntorch.py [--quick] [--out runs/examples/06]`.

# %%
import argparse
import os
import sys
from pathlib import Path

import torch
from torch import nn

import pcmsim
from hardware_in_loop import HardwareInTheLoop

parser = argparse.ArgumentParser(description="An snnTorch network on PCM crossbars")
parser.add_argument("--quick", action="store_true", help="a short run (what the tests run)")
parser.add_argument("--out", help="folder for the NIR file (default runs/examples/06[-quick])")
args, _ = parser.parse_known_args()
QUICK = args.quick or os.environ.get("PCMSIM_EXAMPLES_QUICK") == "1"
ROOT = Path(os.environ.get("PCMSIM_EXAMPLES_OUT", "runs/examples"))  # where the examples write
OUT = Path(args.out) if args.out else ROOT / ("06-quick" if QUICK else "06")
torch.set_num_threads(1)
try:
    import snntorch as snn
except ImportError:
    print("This example needs snnTorch: pip install snntorch (or the dev extra, pip install -e .[dev])")
    sys.exit(0)

# %% [markdown]
# ## The snnTorch network
# `Linear → Leaky → Linear → Leaky`, the same input current at every one of 10 steps, the class the
# output neuron that spikes most (snnTorch's tutorial 5, sized for the 8×8 digits).


# %%
class Net(nn.Module):
    def __init__(self, steps: int = 10) -> None:
        super().__init__()
        self.steps = steps
        self.fc1, self.lif1 = nn.Linear(64, 100), snn.Leaky(beta=0.9)
        self.fc2, self.lif2 = nn.Linear(100, 10), snn.Leaky(beta=0.9)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mem1, mem2 = self.lif1.init_leaky(), self.lif2.init_leaky()
        spikes, mems = [], []
        for _ in range(self.steps):
            spk1, mem1 = self.lif1(self.fc1(x), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spikes.append(spk2)
            mems.append(mem2)
        return torch.stack(spikes), torch.stack(mems)


torch.manual_seed(0)
net = Net()
data = pcmsim.load_digits_data(seed=0)

# %% [markdown]
# ## Onto the crossbars
# Every `nn.Linear` becomes an analog layer whose current weights are programmed (program-and-verify
# of the device model); the report lists devices, pulses and the programming error per layer.

# %%
analog, report = pcmsim.convert(net, device_model="pcm-joshi2020", seed=0, t_s=60.0)
print(report.table())

# %% [markdown]
# ## Training with the hardware in the loop

# %%
optimizer = torch.optim.Adam(analog.parameters(), lr=2e-3)
hil = HardwareInTheLoop(analog, optimizer, scheme="mixed-precision", generator=torch.Generator().manual_seed(0))
g = torch.Generator().manual_seed(0)


def accuracy() -> float:
    with torch.no_grad():
        spikes, _ = analog(data.x_test)
    return float((spikes.sum(0).argmax(-1) == data.y_test).float().mean())


print(f"test accuracy before training {accuracy():.3f}")
for _ in range(15 if QUICK else 300):
    i = torch.randint(0, len(data.y_train), (64,), generator=g)
    _, mem = analog(data.x_train[i])
    loss = sum(nn.functional.cross_entropy(m, data.y_train[i]) for m in mem)  # over every step
    optimizer.zero_grad()
    loss.backward()
    hil.step()
hil.epoch_done()
trained = accuracy()
print(f"test accuracy after training {trained:.3f} ({hil.totals.pulses_set:,} SET pulses)")

# %% [markdown]
# ## The same network through NIR
# snnTorch exports a NIR graph; `pcmsim.nir.load` builds it on crossbars, with pcmsim's own neurons.
# NIR's LIF resets to zero in the step of the spike, which is snnTorch's `reset_mechanism="zero"`.

# %%
from snntorch.export_nir import export_to_nir  # noqa: E402


def leaky(n: int) -> "snn.Leaky":
    return snn.Leaky(beta=torch.full((n,), 0.9), threshold=torch.ones(n), init_hidden=True,
                     reset_mechanism="zero", reset_delay=False)


torch.manual_seed(0)
seq = nn.Sequential(nn.Linear(64, 100), leaky(100), nn.Linear(100, 10), leaky(10))
graph = export_to_nir(seq, torch.zeros(1, 64), ignore_dims=[0])
pnet = pcmsim.nir.load(graph, device_model="pcm-joshi2020", seed=0)
x = data.x_test[:8]
spikes = pnet(x.expand(10, *x.shape))  # time-major input [T, B, 64] → output spikes [T, B, 10]
OUT.mkdir(parents=True, exist_ok=True)
pcmsim.nir.export(pnet, OUT / "digits.nir")  # the weights as the devices hold them
print(f"NIR nodes {sorted(graph.nodes)}; output spikes {list(spikes.shape)}; written {OUT / 'digits.nir'}")
RESULTS = {"n_devices": report.n_devices, "accuracy": trained, "pulses_set": hil.totals.pulses_set,
           "nir_output_shape": list(spikes.shape)}
