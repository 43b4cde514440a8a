"""Tutorial: an snnTorch network on ~52,800 PCM devices, trained with the hardware in the loop.

The network of snnTorch's tutorial 5 ("Training spiking neural networks with snnTorch",
Eshraghian et al., Proc. IEEE 111(9), 1016 (2023)): ``Linear → Leaky → Linear → Leaky``, the same
input current every step, the loss summed over the output potentials of every step, the class the
output neuron that spikes most. Sized for the 8×8 digits (64 → 357 → 10: 26,418 weights, 52,836
devices, one differential pair each), so that it runs on a laptop in a minute. Read
``docs/tutorial-snntorch.md`` alongside. ::

    python docs/tutorial_snntorch.py                 # full: 6 epochs, plots in runs/tutorial-snntorch
    python docs/tutorial_snntorch.py --quick         # the CI check: a few batches
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import snntorch as snn
import torch
from torch import Tensor, nn

import pcmsim
from hardware_in_loop.clock import Clock
from hardware_in_loop.updater import HardwareInTheLoop
from pcmsim.analog import analog_layers
from pcmsim.data import load_digits_data


# -- 1. the snnTorch network, as in snnTorch's tutorial 5 -------------------------------------------
class Net(nn.Module):
    def __init__(self, num_inputs: int = 64, num_hidden: int = 357, num_outputs: int = 10,
                 beta: float = 0.95, num_steps: int = 25) -> None:
        super().__init__()
        self.num_steps = num_steps
        self.fc1 = nn.Linear(num_inputs, num_hidden)
        self.lif1 = snn.Leaky(beta=beta)
        self.fc2 = nn.Linear(num_hidden, num_outputs)
        self.lif2 = snn.Leaky(beta=beta)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mem1 = self.lif1.init_leaky()
        mem2 = self.lif2.init_leaky()
        spk2_rec, mem2_rec = [], []
        for _ in range(self.num_steps):
            cur1 = self.fc1(x)  # on a crossbar after pcmsim.convert: one analog read per step
            spk1, mem1 = self.lif1(cur1, mem1)
            cur2 = self.fc2(spk1)
            spk2, mem2 = self.lif2(cur2, mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec), torch.stack(mem2_rec)


def accuracy(net: nn.Module, x: Tensor, y: Tensor) -> float:
    """Share of examples whose most-spiking output neuron is the label."""
    with torch.no_grad():
        spk, _ = net(x)
    return float((spk.sum(0).argmax(1) == y).float().mean())


def run(epochs: int = 6, batch_size: int = 64, lr: float = 2e-3, device_model: str = "pcm-joshi2020",
        max_batches: int | None = None, test_limit: int | None = None, out_dir: Path | None = None,
        seed: int = 0) -> dict[str, Any]:
    torch.manual_seed(seed)  # snnTorch's layers draw their initial weights from the global generator
    data = load_digits_data(seed=seed)
    x_test, y_test = data.x_test[:test_limit], data.y_test[:test_limit]  # all with test_limit=None
    net = Net()

    # -- 2. onto the crossbars: every nn.Linear becomes an AnalogLinear, its weights programmed ----
    clock = Clock()  # the simulated wall time of the chip, s (starts at 60 s)
    analog, report = pcmsim.convert(net, device_model=device_model, seed=seed, t_s=clock.now_s)
    print(report.table())

    # -- 3. train with the hardware in the loop: Adam proposes ΔW, the devices get SET pulses -------
    optimizer = torch.optim.Adam(analog.parameters(), lr=lr, betas=(0.9, 0.999))
    hil = HardwareInTheLoop(analog, optimizer, scheme="mixed-precision", clock=clock,
                            generator=torch.Generator().manual_seed(seed))
    loss_fn = nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    start = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(data.y_train), generator=g)
        for b, i in enumerate(order.split(batch_size)):
            if max_batches is not None and b >= max_batches:
                break
            _, mem = analog(data.x_train[i])
            loss = sum(loss_fn(mem[t], data.y_train[i]) for t in range(mem.shape[0]))
            optimizer.zero_grad()
            loss.backward()  # type: ignore[union-attr]
            hil.step()  # instead of optimizer.step(): pulses; the clock advances by the 25 steps, pulses, overhead
            losses.append(float(loss.detach()))  # type: ignore[union-attr]
        acc = accuracy(analog, x_test, y_test)
        print(f"epoch {epoch + 1}: loss {sum(losses[-10:]) / len(losses[-10:]):.3f}, test accuracy {acc:.3f}, "
              f"t = {clock.now_s:.0f} s, SET pulses {hil.totals.pulses_set:,}")
        hil.epoch_done()  # the idle time between epochs
    seconds = time.perf_counter() - start

    # -- 4. a day of drift, with and without global drift compensation ------------------------------
    delays = {"1 min": 60.0, "1 h": 3600.0, "1 day": 86400.0}
    rows = pcmsim.evaluate_over_drift(analog, lambda: {"accuracy": accuracy(analog, x_test, y_test)},
                                      delays, ("none", "global"))
    for row in rows:
        print(f"{row['compensation']:>7} after {row['delay']:>6}: test accuracy {row['accuracy']:.3f}")
    results = {"n_devices": report.n_devices, "programming_pulses": report.total_pulses, "losses": losses,
               "train_seconds": seconds, "pulses_set": hil.totals.pulses_set, "drift": rows}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.json").write_text(json.dumps(results, indent=1))
        plot(analog, clock.now_s, rows, out_dir)
    return results


# -- 5. the plots: conductances of every device, accuracy over a day ------------------------------
def plot(analog: nn.Module, t_s: float, rows: list[dict[str, Any]], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, layer in zip(("fc1", "fc2"), analog_layers(analog)):
        g = layer.crossbar.conductances(t_s)  # [pairs, 2 (G⁺, G⁻), out, in], µS, after training
        for sign, label in ((0, "G⁺"), (1, "G⁻")):
            axes[0].hist(g[:, sign].flatten().numpy(), bins=60, histtype="step", log=True,
                         label=f"{name} {label}")
    axes[0].set(xlabel="conductance (µS)", ylabel="devices", title="conductances after training")
    axes[0].legend(fontsize=8)
    for mode, style in (("none", "o-"), ("global", "s--")):
        pts = [(max(r["delay_s"], 1.0), r["accuracy"]) for r in rows if r["compensation"] == mode]
        axes[1].plot(*zip(*pts), style, label=f"compensation: {mode}")
    accs = [r["accuracy"] for r in rows]
    pad = max(0.005, 0.15 * (max(accs) - min(accs)))  # zoomed to the data, so that drift is visible
    axes[1].set(xscale="log", xlabel="time since the end of training (s; 0 drawn at 1 s)",
                ylabel="test accuracy", title="accuracy over a day of drift",
                ylim=(max(0.0, min(accs) - pad), min(1.0, max(accs) + pad)))
    axes[1].grid(alpha=0.3, which="both")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "tutorial-snntorch.png", dpi=110)
    plt.close(fig)


# -- 6. the same network through NIR: snnTorch export → pcmsim.nir.load ---------------------------
def through_nir(device_model: str = "pcm-joshi2020", seed: int = 0) -> dict[str, Any]:
    from snntorch.export_nir import export_to_nir

    def leaky(n: int) -> snn.Leaky:  # NIR's LIF resets to v_reset in the step of the spike
        return snn.Leaky(beta=torch.full((n,), 0.95), threshold=torch.ones(n), init_hidden=True,
                         reset_mechanism="zero", reset_delay=False)

    torch.manual_seed(seed)
    seq = nn.Sequential(nn.Linear(64, 357), leaky(357), nn.Linear(357, 10), leaky(10))
    graph = export_to_nir(seq, torch.zeros(1, 64), ignore_dims=[0])
    pnet = pcmsim.nir.load(graph, device_model=device_model, seed=seed)  # dt_s=1e-4: snnTorch's step
    print(pnet.report.table())
    x = load_digits_data(seed=seed).x_test[:8]
    spikes = pnet(x.expand(25, *x.shape))  # time-major: [T, B, 64] → output spikes [T, B, 10]
    return {"nir_nodes": list(graph.nodes), "nir_devices": pnet.report.n_devices,
            "nir_output_shape": list(spikes.shape)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few batches only (the CI check)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--device-model", default="pcm-joshi2020")
    parser.add_argument("--out", type=Path, default=Path("runs/tutorial-snntorch"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        results = run(epochs=1, max_batches=6, test_limit=120, device_model=args.device_model, out_dir=args.out)
    else:
        results = run(epochs=args.epochs, device_model=args.device_model, out_dir=args.out)
    return {**results, **through_nir(args.device_model)}


if __name__ == "__main__":
    main()
