"""The one training loop of every task, in software or with the hardware in the loop.

A run writes one folder (every file atomically: temporary file, then rename)::

    config.json        the run's config (its task's config dataclass)
    metrics.jsonl      one line per epoch: train and evaluation metrics, pulses, refreshes, times
    checkpoint.pt      the latest state (devices, χ, optimiser, clock, every random stream)
    snapshots/         conductances of every device at the start, at chosen epochs and at the end
                       (pcm flavour; ``pcmsim.load_snapshots`` reads them)
    results.json       written at the end: the same numbers for the same seed, however often the
                       run was interrupted and resumed
    timing.json        wall-clock times (they differ between runs, so they are not in results.json)
    device_model.json  a copy of the fitted device model's file, for a pcm run on one (its SHA-256 is
                       in results.json and the checkpoint; a resume refuses a file that changed)

A checkpoint is written at the end of every epoch and when the run is interrupted (Ctrl-C or
SIGTERM, at a batch boundary). ``resume()`` continues from it and ends with the same numbers as an
uninterrupted run with the same seed; a run killed outright (SIGKILL) continues from its last
checkpoint and ends the same way.
"""

from __future__ import annotations

import hashlib
import math
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from device_models.fit import is_fitted_file
from pcmsim.analog import analog_layers
from pcmsim.drift import set_time as set_model_time
from pcmsim.fileio import atomic_write
from pcmsim.neuron_models.base import set_neuron_loop
from pcmsim.typedconfig import load

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint, write_json, write_jsonl
from .clock import Clock
from .config import ConfigError, RunConfig
from .cost_counts import RunCounts
from .log import info, progress_enabled
from .schemes import UpdateStats
from .seeds import Stream, derive_seed, epoch_order, generator
from .tasks import Task, make_task
from .tasks.base import BuildContext

CHECKPOINT_FORMAT = 2
HIL_KEYS = ("pulses_set", "pulses_reset", "refreshes")


class TrainingInterrupted(RuntimeError):
    """The run was interrupted; a checkpoint was written and ``resume`` continues it."""


def build_optimizer(config: RunConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The digital optimiser of ``config`` over the model's trainable parameters."""
    if config.flavour == "aihwkit":
        from aihwkit.optim import AnalogSGD

        opt = AnalogSGD(model.parameters(), lr=config.lr, momentum=config.momentum)
        opt.regroup_param_groups(model)
        return opt
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


class Trainer:
    """Train and evaluate the task of ``config``; see the module docstring.

    Args:
        config: a task config (:func:`hardware_in_loop.tasks.load_config`).
        out_dir: the run folder.
        progress: log one line per epoch (and a progress bar when :func:`hardware_in_loop.log.progress_enabled`).
        log: the function that takes those lines (default: INFO records of the logger ``pcmsim.trainer``).
        task: use this task object (e.g. with data already in memory) instead of making one.
    """

    def __init__(self, config: RunConfig, out_dir: str | Path, *, progress: bool = True,
                 log: Callable[[str], Any] | None = None, task: Task | None = None) -> None:
        self.config = config
        self.out_dir = Path(out_dir)
        self.progress = progress
        self.log = log or info("trainer")
        self.task = task or make_task(config)
        if config.flavour not in self.task.flavours:
            raise ConfigError(f"config: field 'flavour' = {config.flavour!r} is invalid: expected one of "
                              f"{', '.join(self.task.flavours)} for task {self.task.name!r}")
        self.task.load_data()
        self.device = torch.device(config.device)
        seed = config.seed
        self.streams = {name: generator(seed, Stream[name.upper()], device=self.device)
                        for name in self.task.input_streams}
        self.clock = Clock(config.clock)
        ctx = BuildContext(flavour=config.flavour, generator=generator(seed, Stream.MODEL),
                           device_seed=derive_seed(seed, Stream.DEVICES), t_start_s=config.clock.t_start_s,
                           device=self.device, hwa_seed=derive_seed(seed, Stream.HWA))
        self.model = self.task.build_model(ctx).to(self.device)
        set_neuron_loop(self.model, config.neuron_loop)
        self.task.after_build(self.model)
        self.optimizer = build_optimizer(config, self.model)
        self.hil = None
        # a fitted device model is a file (pcmsim device fit): the run records its digest and a copy
        self.device_file = (Path(config.device_model).read_bytes()
                            if config.flavour == "pcm" and is_fitted_file(config.device_model) else None)
        self.device_file_sha256 = hashlib.sha256(self.device_file).hexdigest() if self.device_file is not None else None
        self.counts: RunCounts | None = None
        self.hardware_generator = generator(seed, Stream.HARDWARE)
        if config.flavour == "pcm":
            from .updater import HardwareInTheLoop

            self.hil = HardwareInTheLoop(self.model, self.optimizer, config.update_scheme, clock=self.clock,
                                         generator=self.hardware_generator, params=config.scheme_params)
            self.counts = RunCounts(analog_layers(self.model))
        self.epoch = 0
        self.batch_index = 0
        self.partial: dict[str, float] = {}
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"epoch": -1}
        self.wall_time_s = 0.0

    # -- time and evaluation -----------------------------------------------------------------
    def set_time(self, t_s: float | None = None) -> None:
        """Read the devices at ``t_s`` (default: the clock's time) from now on."""
        set_model_time(self.model, self.clock.now_s if t_s is None else t_s)

    @torch.no_grad()
    def evaluate(self, split: str, *, at_clock: bool = True) -> dict[str, float]:
        """The task's metrics on ``split``, with the devices read at the clock's time (``at_clock``) or
        at the time the analog layers are set to (:func:`pcmsim.evaluate_over_drift` sets it)."""
        self.model.eval()
        if at_clock:
            self.set_time()
        try:
            return self.task.evaluate(self.model, split)
        finally:
            self.model.train()

    # -- checkpoints ---------------------------------------------------------------------------
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
            "model": self.model.state_dict(),  # the devices travel inside, as AnalogLinear extra state
            "optimizer": self.optimizer.state_dict(),
            "clock": self.clock.state_dict(),
            "rng": {"hardware": self.hardware_generator.get_state(),
                    **{f"stream:{k}": g.get_state() for k, g in self.streams.items()}},
        }
        if self.config.flavour == "aihwkit":  # aihwkit's layers draw from torch's global generator
            state["rng"]["torch"] = torch.get_rng_state()
        if self.hil is not None:
            state["hil"] = self.hil.state_dict()
        if self.counts is not None:
            state["cost_counts"] = self.counts.state_dict()
        if self.device_file_sha256 is not None:
            state["device_file_sha256"] = self.device_file_sha256
        return state

    def _same_config(self, saved: Any) -> bool:
        """Whether a checkpoint's config is this run's: equal as data, or equal once loaded (a config
        written before a field was added, or with a default spelled out, is the same config)."""
        if saved == self.config.to_dict():
            return True
        try:
            return load(type(self.config), saved, source="checkpoint").to_dict() == self.config.to_dict()
        except ConfigError:
            return False

    def load_state_dict(self, state: dict[str, Any]) -> None:
        fmt = state.get("format")
        if fmt not in (1, CHECKPOINT_FORMAT):
            raise CheckpointError(f"checkpoint format {fmt!r} is not supported (expected {CHECKPOINT_FORMAT})")
        saved = state.get("config")
        if fmt == CHECKPOINT_FORMAT and saved is not None and not self._same_config(saved):
            mine = self.config.to_dict()
            diff = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k)) or ["?"]
            raise CheckpointError(f"{self.checkpoint_path}: written by another config (field {diff[0]!r} "
                                  f"differs); resume with the run's own config.json")
        if state.get("device_file_sha256", self.device_file_sha256) != self.device_file_sha256:
            raise CheckpointError(f"{self.checkpoint_path}: the device model file {self.config.device_model} has "
                                  f"changed since the checkpoint (its SHA-256 differs; the run's copy is "
                                  f"{self.out_dir / 'device_model.json'})")
        rng = dict(state["rng"])
        if fmt == 1:  # pcmsim ≤ 0.1: the music trainer's layout
            rng = {"hardware": rng["device"]}
        self.epoch = int(state["epoch"])
        self.batch_index = int(state["batch_index"])
        self.partial = dict(state["partial"])
        self.history = list(state["history"])
        self.best = dict(state["best"])
        self.wall_time_s = float(state["wall_time_s"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.clock.load_state_dict(state["clock"])
        self.hardware_generator.set_state(rng["hardware"])
        for name, g in self.streams.items():
            g.set_state(rng[f"stream:{name}"])
        if "torch" in rng and self.config.flavour == "aihwkit":
            torch.set_rng_state(rng["torch"])
        if self.hil is not None:
            # the digital weight estimates come back with the model's parameters, exactly as they
            # were read from the devices after the last update (no re-read: drift since then
            # would make the resumed run differ from an uninterrupted one)
            self.hil.load_state_dict(state["hil"])
        if self.counts is not None and "cost_counts" in state:
            self.counts.load_state_dict(state["cost_counts"])

    def save(self) -> None:
        save_checkpoint(self.checkpoint_path, self.state_dict())
        write_jsonl(self.out_dir / "metrics.jsonl", self.history)

    def resume(self) -> bool:
        """Continue from the run folder's checkpoint; False (a fresh start) when there is none yet."""
        if not self.checkpoint_path.is_file():
            return False
        self.load_state_dict(load_checkpoint(self.checkpoint_path))
        return True

    # -- training ------------------------------------------------------------------------------
    def n_batches(self) -> int:
        return math.ceil(self.task.n_train() / self.config.batch_size)

    def batches(self) -> Iterator[tuple[int, list[int]]]:
        """``(k, indices)`` of the current epoch's batches from ``batch_index`` on."""
        order = epoch_order(self.task.n_train(), self.config.seed, self.epoch)
        bs = self.config.batch_size
        for k in range(self.batch_index, self.n_batches()):
            yield k, order[k * bs : (k + 1) * bs]

    def train_batch(self, indices: list[int]) -> tuple[dict[str, float], UpdateStats]:
        """One forward pass, BPTT and update; the batch's sums and the devices' update statistics."""
        step, time_steps = self.task.train_step(self.model, indices, self.streams, self.set_time)
        self.optimizer.zero_grad(set_to_none=True)
        step.loss.backward()
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        if self.hil is not None:  # it owns the clock: forward pass, pulse rounds, batch overhead
            stats = self.hil.step()
        else:
            self.clock.forward_pass(time_steps)
            self.optimizer.step()
            stats = UpdateStats()
            self.clock.batch_done()
        if self.counts is not None:
            self.counts.batch(stats)
        return step.sums, stats

    def _lr_for_epoch(self) -> None:
        lr = self.config.lr * self.config.lr_decay ** self.epoch
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _snapshot(self, tag: str) -> None:
        analog = analog_layers(self.model)
        if not analog:
            return
        names = {id(m): name for name, m in self.model.named_modules()}
        snap = {
            "format": CHECKPOINT_FORMAT, "tag": tag, "epoch": self.epoch, "t_s": self.clock.now_s,
            "layers": [names.get(id(m), f"layer{i}") for i, m in enumerate(analog)],
            "g_us": [m.crossbar.model.drifted(m.crossbar.state, self.clock.now_s) for m in analog],
            "pulse_count": [m.crossbar.state.pulse_count.clone() for m in analog],
        }
        save_checkpoint(self.out_dir / "snapshots" / f"{tag}.pt", snap)

    def fit(self) -> None:
        """Train until ``epochs`` or early stopping; checkpoint every epoch and on interruption."""
        cfg = self.config
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_json(self.out_dir / "config.json", cfg.to_dict())
        if self.device_file is not None and not (self.out_dir / "device_model.json").is_file():
            device_file = self.device_file  # the bytes whose digest the run records
            atomic_write(self.out_dir / "device_model.json", lambda fh: fh.write(device_file), binary=True)
        if self.epoch == 0 and self.batch_index == 0 and not self.history:
            self._snapshot("start")
        self.model.train()
        with _interrupt_guard() as interrupted:
            while self.epoch < cfg.epochs and not self.early_stopped():
                self._lr_for_epoch()
                t0 = time.perf_counter()
                bar = _progress(self.n_batches(), self.batch_index, f"epoch {self.epoch + 1}/{cfg.epochs}",
                                self.progress)
                for k, indices in self.batches():
                    sums, stats = self.train_batch(indices)
                    for key, value in sums.items():
                        self.partial[key] = self.partial.get(key, 0.0) + value
                    for key in HIL_KEYS:
                        self.partial[key] = self.partial.get(key, 0) + getattr(stats, key)
                    self.batch_index = k + 1
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix_str(f"{self.task.progress_text(self.partial)} "
                                            f"pulses={int(self.partial.get('pulses_set', 0))}")
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
        # the end of training is always in the snapshots: "end" unless this epoch's snapshot holds it
        taken = self.epoch in cfg.snapshot_epochs or (self.out_dir / "snapshots" / "end.pt").is_file()
        if self.epoch > 0 and not taken:
            self._snapshot("end")

    def _end_epoch(self, wall_s: float) -> None:
        task = self.task
        if self.counts is not None:
            self.counts.end_phase("train")
        evals = {split: self.evaluate(split) for split in task.splits()}
        if self.counts is not None:
            self.counts.end_phase("eval")
        self.wall_time_s += wall_s
        row: dict[str, Any] = {"epoch": self.epoch + 1, **task.train_metrics(self.partial)}
        for split, metrics in evals.items():
            row.update({f"{split}_{k}": v for k, v in metrics.items()})
        row.update({"lr": self.optimizer.param_groups[0]["lr"], "simulated_time_s": self.clock.now_s,
                    "wall_time_s": self.wall_time_s})
        if self.hil is not None:
            row.update({k: int(self.partial.get(k, 0)) for k in HIL_KEYS})
            row["saturated_devices"] = self.saturated_devices()
        self.history.append(row)
        if self._better(evals.get("valid")):
            best: dict[str, Any] = {"epoch": self.epoch + 1}
            if "valid" in evals:
                best[f"valid_{task.metric}"] = evals["valid"][task.metric]
            best.update({f"test_{k}": v for k, v in evals.get("test", {}).items()})
            self.best = best
        if self.progress:
            shown = [f"{k} {v:.4g}" for k, v in row.items()
                     if k.startswith(("train_", "valid_", "test_")) and isinstance(v, float)]
            hil = f"  pulses {row['pulses_set']}  refreshes {row['refreshes']}" if self.hil is not None else ""
            self.log(f"epoch {row['epoch']}/{self.config.epochs}: " + "  ".join(shown) + hil)
        self.epoch += 1
        self.batch_index = 0
        self.partial = {}
        if self.hil is not None:
            self.hil.epoch_done()
        else:
            self.clock.epoch_done()
        if self.epoch in self.config.snapshot_epochs:
            self._snapshot(f"epoch{self.epoch}")
        self.save()

    def _better(self, valid: dict[str, float] | None) -> bool:
        """Whether this epoch becomes the best: by the validation metric, or the last epoch without one."""
        if valid is None:
            return True
        key = f"valid_{self.task.metric}"
        if key not in self.best:
            return True
        value, best = valid[self.task.metric], self.best[key]
        return value > best if self.task.higher_is_better else value < best

    def early_stopped(self) -> bool:
        p = self.config.patience
        return p is not None and self.best["epoch"] > 0 and self.epoch - self.best["epoch"] >= p

    def saturated_devices(self, fraction: float = 0.95) -> int:
        """Devices whose conductance is above ``fraction·g_max`` at the clock's time."""
        total = 0
        for m in analog_layers(self.model):
            xb = m.crossbar
            g = xb.model.drifted(xb.state, self.clock.now_s)
            total += int((g > fraction * xb.model.g_max_us).sum())
        return total

    # -- results -------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """The headline numbers of the finished run (no wall-clock times: see :meth:`timing`)."""
        cfg = self.config
        last = self.history[-1] if self.history else {}
        out: dict[str, Any] = {"task": self.task.name, "name": cfg.name, "flavour": cfg.flavour,
                               **self.task.summary(), "epochs": self.epoch, "best_epoch": self.best["epoch"]}
        out.update({k: v for k, v in self.best.items() if k != "epoch"})
        out.update({f"final_{k}": v for k, v in last.items() if k.startswith(("train_", "test_"))})
        out.update({"simulated_time_s": self.clock.now_s, "seed": cfg.seed})
        if self.device_file_sha256 is not None:
            out["device_model_sha256"] = self.device_file_sha256
        if self.hil is not None:
            analog = analog_layers(self.model)
            out.update({
                "n_devices": sum(int(m.crossbar.n_devices) for m in analog),
                "device_model": cfg.device_model,
                "update_scheme": cfg.update_scheme,
                **{k: sum(int(r.get(k, 0)) for r in self.history) for k in HIL_KEYS},
                "max_pulses_per_device": max(int(m.crossbar.state.pulse_count.max()) for m in analog),
                "saturated_devices": self.saturated_devices(),
            })
            if self.counts is not None:
                from pcmsim.cost import DEFAULT_PROFILE, estimate

                # every split is evaluated once per epoch; the sizes where the task reports them
                sizes = [out.get(f"n_{split}") for split in self.task.splits()]
                known = [n for n in sizes if isinstance(n, int)]
                n_eval = self.epoch * sum(known) if len(known) == len(sizes) else None
                counts = self.counts.summary(pulses_set=out["pulses_set"], pulses_reset=out["pulses_reset"],
                                             epochs=self.epoch, optimizer=cfg.optimizer, eval_sequences=n_eval)
                out["hardware_counts"] = counts
                out["cost"] = estimate(counts, DEFAULT_PROFILE)
        return out

    def timing(self) -> dict[str, float]:
        return {"train_wall_time_s": self.wall_time_s}


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


def _progress(total: int, initial: int, desc: str, enabled: bool) -> Any:
    """A progress bar redrawn per batch, only where :func:`hardware_in_loop.log.progress_enabled` allows."""
    if not progress_enabled(enabled):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, leave=False, dynamic_ncols=True)
