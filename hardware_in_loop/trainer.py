"""The training loop for next-step music prediction, in software or with the hardware in the loop.

A run writes one folder::

    config.json        the TrainConfig
    metrics.jsonl      one line per epoch: train/valid/test NLL, pulses, refreshes, simulated time
    checkpoint.pt      the latest state (devices, χ, optimiser, clock, every RNG state)
    snapshots/         conductances of every device at chosen epochs (pcm flavour)
    results.json       written at the end

Checkpoints are written atomically at the end of every epoch and when the run is interrupted
(Ctrl-C/SIGTERM, at a batch boundary); ``resume=True`` continues from one and ends with the same
numbers as an uninterrupted run with the same seed.
"""

from __future__ import annotations

import math
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from pcmsim.data import load_dataset, pad_batch
from pcmsim.metrics import MusicMetrics, nll_sum_over_keys
from pcmsim.networks import SNUNetwork, build_snu_network

from .checkpoint import load_checkpoint, save_checkpoint, write_json, write_jsonl
from .clock import Clock
from .config import ConfigError, TrainConfig
from .schemes import UpdateStats

CHECKPOINT_FORMAT = 1


class TrainingInterrupted(RuntimeError):
    """The run was interrupted; a checkpoint was written and ``resume`` continues it."""


def _derive_seed(seed: int, *tags: int) -> int:
    s = seed & 0xFFFFFFFF
    for tag in tags:
        s = (s * 6364136223846793005 + 1442695040888963407 + tag) & 0x7FFFFFFFFFFFFFFF
    return s


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The shuffled order of ``n`` training sequences in ``epoch`` (a pure function of seed and epoch)."""
    g = torch.Generator().manual_seed(_derive_seed(seed, 1, epoch))
    return torch.randperm(n, generator=g).tolist()


def analog_modules(model: nn.Module) -> list[nn.Module]:
    from pcmsim.analog import AnalogLinear

    return [m for m in model.modules() if isinstance(m, AnalogLinear)]


class MusicTrainer:
    """Train and evaluate an SNU network on a polyphonic music dataset; see module docstring."""

    def __init__(self, config: TrainConfig, out_dir: str | Path, *, progress: bool = True,
                 log: Any = print) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.log = log
        self.data = self._load_data()
        torch.manual_seed(_derive_seed(config.seed, 2))
        self.model = self._build_model()
        if config.output_bias_init == "marginal":
            self._init_output_bias()
        self.optimizer = self._build_optimizer()
        self.clock = Clock(config.clock_config())
        self.hil = None
        self.device_generator = torch.Generator().manual_seed(_derive_seed(config.seed, 3))
        if config.flavour == "pcm":
            from .updater import HardwareInTheLoop

            self.hil = HardwareInTheLoop(self.model, self.optimizer, config.update_scheme, clock=self.clock,
                                         generator=self.device_generator, **dict(config.scheme_params))
        self.epoch = 0
        self.batch_index = 0
        self.partial: dict[str, float] = {"loss_sum": 0.0, "steps": 0.0}
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"valid_nll": math.inf, "epoch": -1}
        self.wall_time_s = 0.0

    # -- construction --------------------------------------------------------------------
    def _load_data(self) -> dict[str, list[Tensor]]:
        cfg = self.config
        data = {}
        for split in ("train", "valid", "test"):
            seqs = load_dataset(cfg.dataset, split, data_dir=cfg.data_dir, fmt=cfg.data_format)
            seqs = [s for s in seqs if s.shape[0] >= 2]
            limit = cfg.max_train_sequences if split == "train" else cfg.max_eval_sequences
            if limit is not None:
                seqs = seqs[:limit]
            data[split] = seqs
        return data

    def _build_model(self) -> SNUNetwork:
        cfg = self.config
        net = cfg.net_config()
        if cfg.flavour == "fp32":
            return build_snu_network(net, "fp32")
        if cfg.flavour == "pcm":
            from pcmsim.crossbar import CrossbarConfig

            return build_snu_network(
                net, "pcm", device_model=cfg.device_model, device_params=dict(cfg.device_params),
                crossbar=CrossbarConfig.from_dict(dict(cfg.crossbar)), seed=_derive_seed(cfg.seed, 4),
            )
        return build_snu_network(net, "aihwkit", **dict(cfg.crossbar))

    @torch.no_grad()
    def _init_output_bias(self) -> None:
        """Set the output bias to the logit of each key's frequency in the training targets, so that
        training starts from the marginal distribution instead of p = sigmoid(−threshold) for all keys."""
        rolls = torch.cat([s[1:] for s in self.data["train"]])
        freq = rolls.mean(0).clamp(1e-3, 1 - 1e-3)
        logit = torch.log(freq / (1 - freq))
        from pcmsim.neurons import SNULayer

        bias = self.model.output.bias if isinstance(self.model.output, SNULayer) else self.model.output_bias
        if not isinstance(bias, torch.Tensor) or bias.shape != logit.shape:
            raise ConfigError(f"output_bias_init='marginal' needs an output layer of {logit.numel()} units")
        bias.copy_(logit)

    def _build_optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        params = self.model.parameters()
        if cfg.flavour == "aihwkit":
            from aihwkit.optim import AnalogSGD

            opt = AnalogSGD(params, lr=cfg.lr, momentum=cfg.momentum)
            opt.regroup_param_groups(self.model)
            return opt
        if cfg.optimizer == "adam":
            return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)

    # -- time ------------------------------------------------------------------------------
    def _set_time(self, t_s: float) -> None:
        for m in analog_modules(self.model):
            m.set_time(t_s)

    # -- evaluation ------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, split: str, batch_size: int = 64) -> MusicMetrics:
        """NLL and frame accuracy on a split, with the devices read at the clock's time."""
        self.model.eval()
        self._set_time(self.clock.now_s)
        metrics = MusicMetrics()
        seqs = self.data[split]
        for i in range(0, len(seqs), batch_size):
            batch = pad_batch(seqs[i : i + batch_size])
            logits = self.model(batch.inputs)
            metrics.update(logits, batch.targets, batch.mask)
        self.model.train()
        return metrics

    # -- checkpoints -----------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "batch_index": self.batch_index,
            "partial": dict(self.partial),
            "history": list(self.history),
            "best": dict(self.best),
            "wall_time_s": self.wall_time_s,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "clock": self.clock.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "device": self.device_generator.get_state()},
        }
        # the devices (conductances, drift state, pulse counts, generators) travel inside
        # model.state_dict() as each AnalogLinear's extra state
        if self.hil is not None:
            state["hil"] = self.hil.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ConfigError(
                f"checkpoint format {state.get('format')!r} is not supported (expected {CHECKPOINT_FORMAT})"
            )
        self.epoch = int(state["epoch"])
        self.batch_index = int(state["batch_index"])
        self.partial = dict(state["partial"])
        self.history = list(state["history"])
        self.best = dict(state["best"])
        self.wall_time_s = float(state["wall_time_s"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.clock.load_state_dict(state["clock"])
        torch.set_rng_state(state["rng"]["torch"])
        self.device_generator.set_state(state["rng"]["device"])
        if self.hil is not None:
            # the digital weight estimates come back with the model's parameters, exactly as they
            # were read from the devices after the last update (no re-read: drift since then
            # would make the resumed run differ from an uninterrupted one)
            self.hil.load_state_dict(state["hil"])

    def save(self) -> None:
        save_checkpoint(self.checkpoint_path, self.state_dict())
        write_jsonl(self.out_dir / "metrics.jsonl", self.history)

    # -- training --------------------------------------------------------------------------
    def _batches(self) -> Iterator[tuple[int, list[Tensor]]]:
        seqs = self.data["train"]
        order = epoch_order(len(seqs), self.config.seed, self.epoch)
        bs = self.config.batch_size
        chunks = [order[i : i + bs] for i in range(0, len(order), bs)]
        for k in range(self.batch_index, len(chunks)):
            yield k, [seqs[j] for j in chunks[k]]

    def _n_batches(self) -> int:
        return math.ceil(len(self.data["train"]) / self.config.batch_size)

    def train_batch(self, seqs: list[Tensor]) -> tuple[float, float, UpdateStats]:
        batch = pad_batch(seqs)
        self._set_time(self.clock.now_s)
        logits = self.model(batch.inputs)
        steps = batch.mask.sum()
        loss_sum = nll_sum_over_keys(logits, batch.targets, batch.mask)
        loss = loss_sum / steps
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.clock.forward_pass(batch.inputs.shape[0])
        stats = self.hil.step() if self.hil is not None else (self.optimizer.step() or UpdateStats())
        self.clock.batch_done()
        return float(loss_sum.detach()), float(steps), stats

    def _lr_for_epoch(self) -> None:
        lr = self.config.lr * self.config.lr_decay ** self.epoch
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _snapshot(self, tag: str) -> None:
        analog = analog_modules(self.model)
        if not analog:
            return
        snap = {
            "format": CHECKPOINT_FORMAT, "tag": tag, "t_s": self.clock.now_s,
            "g_us": [m.crossbar.model.drifted(m.crossbar.state, self.clock.now_s) for m in analog],
            "pulse_count": [m.crossbar.state.pulse_count.clone() for m in analog],
        }
        save_checkpoint(self.out_dir / "snapshots" / f"{tag}.pt", snap)

    def fit(self) -> None:
        """Train until ``epochs`` or early stopping; checkpoint every epoch and on interruption."""
        cfg = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.out_dir / "config.json", cfg.to_dict())
        if self.epoch == 0 and self.batch_index == 0 and not self.history:
            self._snapshot("start")
        with _interrupt_guard() as interrupted:
            while self.epoch < cfg.epochs and not self._early_stopped():
                self._lr_for_epoch()
                t0 = time.perf_counter()
                bar = _progress(self._n_batches(), self.batch_index, f"epoch {self.epoch + 1}/{cfg.epochs}",
                                self.progress and not _quiet())
                for k, seqs in self._batches():
                    loss_sum, steps, stats = self.train_batch(seqs)
                    self.partial["loss_sum"] += loss_sum
                    self.partial["steps"] += steps
                    for key, value in stats.as_dict().items():
                        if key != "pulse_rounds":
                            self.partial[key] = self.partial.get(key, 0) + value
                    self.batch_index = k + 1
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(nll=f"{self.partial['loss_sum'] / max(self.partial['steps'], 1):.3f}",
                                        pulses=int(self.partial.get("pulses_set", 0)),
                                        refresh=int(self.partial.get("refreshes", 0)))
                    if interrupted():
                        self.wall_time_s += time.perf_counter() - t0
                        if bar is not None:
                            bar.close()
                        self.save()
                        raise TrainingInterrupted(
                            f"interrupted in epoch {self.epoch + 1} after batch {self.batch_index}; "
                            f"checkpoint written to {self.checkpoint_path}"
                        )
                if bar is not None:
                    bar.close()
                self._end_epoch(time.perf_counter() - t0)

    def _end_epoch(self, wall_s: float) -> None:
        valid = self.evaluate("valid")
        test = self.evaluate("test")
        self.wall_time_s += wall_s
        row: dict[str, Any] = {
            "epoch": self.epoch + 1,
            "train_nll": self.partial["loss_sum"] / max(self.partial["steps"], 1.0),
            "valid_nll": valid.nll, "valid_frame_accuracy": valid.frame_accuracy,
            "test_nll": test.nll, "test_frame_accuracy": test.frame_accuracy,
            "lr": self.optimizer.param_groups[0]["lr"],
            "simulated_time_s": self.clock.now_s, "wall_time_s": self.wall_time_s,
        }
        if self.hil is not None:
            row.update({k: int(self.partial.get(k, 0)) for k in ("pulses_set", "pulses_reset", "refreshes")})
            row["saturated_devices"] = self.saturated_devices()
        self.history.append(row)
        if valid.nll < self.best["valid_nll"]:
            self.best = {"valid_nll": valid.nll, "epoch": self.epoch + 1, "test_nll": test.nll,
                         "test_frame_accuracy": test.frame_accuracy}
        if self.progress:
            self.log(
                f"epoch {row['epoch']}: train {row['train_nll']:.3f}  valid {valid.nll:.3f}  test {test.nll:.3f}"
                + (f"  pulses {row['pulses_set']}  refreshes {row['refreshes']}" if self.hil is not None else "")
            )
        self.epoch += 1
        self.batch_index = 0
        self.partial = {"loss_sum": 0.0, "steps": 0.0}
        self.clock.epoch_done()
        if self.epoch in self.config.snapshot_epochs:
            self._snapshot(f"epoch{self.epoch}")
        self.save()

    def _early_stopped(self) -> bool:
        p = self.config.patience
        return p is not None and self.best["epoch"] > 0 and self.epoch - self.best["epoch"] >= p

    def saturated_devices(self, fraction: float = 0.95) -> int:
        """Devices whose conductance is above ``fraction·g_max`` at the clock's time."""
        total = 0
        for m in analog_modules(self.model):
            xb = m.crossbar
            g = xb.model.drifted(xb.state, self.clock.now_s)
            total += int((g > fraction * xb.model.g_max_us).sum())
        return total

    # -- entry points ----------------------------------------------------------------------
    def resume(self) -> None:
        self.load_state_dict(load_checkpoint(self.checkpoint_path))

    def summary(self) -> dict[str, Any]:
        """The headline numbers of the finished run."""
        last = self.history[-1] if self.history else {}
        out: dict[str, Any] = {
            "dataset": self.config.dataset,
            "flavour": self.config.flavour,
            "network": list(self.config.net_config().sizes),
            "epochs": self.epoch,
            "best_epoch": self.best["epoch"],
            "valid_nll": self.best["valid_nll"],
            "test_nll": self.best.get("test_nll"),
            "test_frame_accuracy": self.best.get("test_frame_accuracy"),
            "final_test_nll": last.get("test_nll"),
            "final_test_frame_accuracy": last.get("test_frame_accuracy"),
            "simulated_time_s": self.clock.now_s,
            "wall_time_s": self.wall_time_s,
            "seed": self.config.seed,
        }
        if self.hil is not None:
            analog = analog_modules(self.model)
            keys = ("pulses_set", "pulses_reset", "refreshes")
            totals = {k: sum(int(r.get(k, 0)) for r in self.history) for k in keys}
            out.update({
                "n_devices": sum(int(m.crossbar.n_devices) for m in analog),
                "device_model": self.config.device_model,
                "update_scheme": self.config.update_scheme,
                **totals,
                "max_pulses_per_device": max(int(m.crossbar.state.pulse_count.max()) for m in analog),
                "saturated_devices": self.saturated_devices(),
            })
        return out


@contextmanager
def _interrupt_guard() -> Iterator[Any]:
    """Turn SIGINT/SIGTERM into a flag checked at batch boundaries (so the checkpoint is consistent)."""
    flag = {"hit": False}

    def handler(signum: int, frame: Any) -> None:
        flag["hit"] = True

    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            old[sig] = signal.signal(sig, handler)
        except ValueError:  # not in the main thread
            pass
    try:
        yield lambda: flag["hit"]
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _quiet() -> bool:
    import os

    return os.environ.get("PCMSIM_QUIET", "") not in ("", "0")


def _progress(total: int, initial: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True)
