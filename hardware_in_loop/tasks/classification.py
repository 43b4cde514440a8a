"""Spiking classification (Iris, 8×8 digits, MNIST).

The network is a feed-forward spiking classifier (:class:`pcmsim.classifier.SpikingClassifier`): hidden
LIF layers of Gerum & Schilling (Neural Computation 33(10), 2021), or SNU/sSNU layers of Woźniak et
al. (Nat. Mach. Intell. 2, 325, 2020), and a non-spiking integrator readout whose last-step
potential is the logit vector of a softmax cross-entropy loss. Intensities in [0, 1] become input
sequences ``[T, B, n]`` through an encoder (:mod:`pcmsim.encoders`).

Model selection uses a validation split carved from the training set (``valid_fraction``); with
none (the default, as the shipped configs) the run reports its last epoch, and the test split is
never used to choose anything.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcmsim.classifier import SpikingClassifier
from pcmsim.data import ClassificationData, available_datasets, load_classification_data
from pcmsim.encoders import ENCODERS, EncoderParams, encode, encoder_params
from pcmsim.network_config import NetworkConfig, network_block
from pcmsim.networks import LinearFactory, make_linear_factory
from pcmsim.readouts import readout_mismatch
from pcmsim.typedconfig import (
    ConfigError,
    at_least,
    bad_value,
    check,
    choices,
    chosen_block,
    dump_sparse,
    unresolved,
)

from ..config import RunConfig, override
from ..seeds import Stream, generator
from .base import BuildContext, Task, TrainStep, uniform_init

CLASSIFIER_SHAPES: dict[str, tuple[int, int]] = {"iris": (4, 3), "digits": (64, 10), "mnist": (784, 10)}
"""Inputs and classes of each classification dataset (``pcmsim.data.available_datasets("classification")``)."""


def default_network() -> NetworkConfig:
    """A classification run's default network: 64-128-10 LIF units of Gerum & Schilling (2021) with
    the non-spiking integrator readout (8×8 digits)."""
    return NetworkConfig(layers=(64, 128, 10), neuron="lif", readout="integrator")


@dataclass(frozen=True)
class ClassificationConfig(RunConfig):
    """A classification run: :class:`RunConfig` plus data, encoder and the spiking classifier.

    Attributes:
        dataset: ``iris``, ``digits`` (8×8) or ``mnist``; data_dir: folder of the MNIST IDX files
            (default ``$PCMSIM_DATA/mnist``); download: fetch missing MNIST files (SHA-256 checked).
        train_limit, test_limit: keep only the first N examples of a split.
        valid_fraction: the share of the training set held out for validation (model selection,
            early stopping); 0: none, the run reports its last epoch.
        encoder, encoder_params: how intensities become spikes (``encoder_params``: the encoder's
            typed options, :data:`pcmsim.encoders.ENCODER_PARAMS`); steps: ``T`` per example.
        network: the layers, neurons and readout (:class:`pcmsim.NetworkConfig`; default
            :func:`default_network`); its readout gives one logit vector per example
            (``integrator`` or ``spike_count``).
    """

    task: str = "classification"
    dataset: str = field(default="digits", metadata=choices(lambda: available_datasets("classification")))
    data_dir: str | None = None
    download: bool = True
    train_limit: int | None = field(default=None, metadata=at_least(1))
    test_limit: int | None = field(default=None, metadata=at_least(1))
    valid_fraction: float = field(default=0.0, metadata=check(lambda v: 0 <= v < 1, "0 ≤ valid_fraction < 1"))
    encoder: str = field(default="poisson", metadata=choices(lambda: ENCODERS))
    encoder_params: EncoderParams = field(default_factory=unresolved, metadata={
                                          "load": chosen_block(EncoderParams, what="encoder options"),
                                          "dump": dump_sparse,
                                                    "expected": "an object of the encoder's options "
                                                                "(pcmsim.encoders.ENCODER_PARAMS)"})
    steps: int = field(default=20, metadata=at_least(1))
    network: NetworkConfig = field(default_factory=default_network, metadata=network_block(default_network))
    lr: float = override("lr", 1e-3)
    grad_clip: float | None = override("grad_clip", None)
    epochs: int = override("epochs", 20)
    batch_size: int = override("batch_size", 32)
    eval_batch_size: int = override("eval_batch_size", 256)
    drift_times: list[str | float] = override("drift_times", [])

    def validate(self, source: str = "config", path: str = "") -> None:
        super().validate(source, path)
        object.__setattr__(self, "encoder_params", encoder_params(self.encoder, self.encoder_params, source=source,
                                                                  path="encoder_params"))
        expected = readout_mismatch(self.network.readout, per_step=False, use="classification")
        if expected is not None:
            raise bad_value(source, "network.readout", self.network.readout, expected)
        layers = list(self.network.layers)
        n_in, n_out = CLASSIFIER_SHAPES[self.dataset]
        if layers[0] != n_in or layers[-1] != n_out:
            raise bad_value(source, "network.layers", layers,
                            f"{n_in} inputs first and {n_out} classes last for dataset {self.dataset!r}")

    @property
    def has_validation(self) -> bool:
        return self.valid_fraction > 0


def seeded_fp32_factory(gen: torch.Generator, init_scale: float = 1.0) -> LinearFactory:
    """``nn.Linear`` factory whose weights are drawn from ``gen``: ``U(±init_scale/√fan_in)``
    (PyTorch's default initialisation times ``init_scale``)."""

    def factory(n_in: int, n_out: int, bias: bool) -> nn.Module:
        layer = nn.utils.skip_init(nn.Linear, n_in, n_out, bias=bias)
        bound = init_scale / math.sqrt(n_in)
        with torch.no_grad():
            layer.weight.copy_((torch.rand(n_out, n_in, generator=gen) * 2 - 1) * bound)
            if layer.bias is not None:
                layer.bias.copy_((torch.rand(n_out, generator=gen) * 2 - 1) * bound)
        return layer

    return factory


class ClassificationTask(Task):
    name = "classification"
    config_class = ClassificationConfig
    metric = "accuracy"
    higher_is_better = True
    config: ClassificationConfig
    input_streams: ClassVar[tuple[str, ...]] = ("train_input",)

    def __init__(self, config: RunConfig, data: ClassificationData | None = None) -> None:
        super().__init__(config)
        self._given = data

    def load_data(self) -> None:
        cfg = self.config
        data = self._given or load_classification_data(
            cfg.dataset, seed=cfg.seed, root=cfg.data_dir, download=cfg.download,
            train_limit=cfg.train_limit, test_limit=cfg.test_limit,
        )
        sizes = list(cfg.network.layers)
        if sizes[0] != data.n_features or sizes[-1] < data.n_classes:
            raise ConfigError(f"config: field 'network.layers' = {sizes!r} is invalid: expected "
                              f"{data.n_features} inputs and {data.n_classes} classes for the data")
        x, y = data.x_train, data.y_train
        self.split: dict[str, tuple[Tensor, Tensor]] = {"test": (data.x_test, data.y_test)}
        n_valid = int(round(cfg.valid_fraction * x.shape[0]))
        if n_valid > 0:
            perm = torch.randperm(int(x.shape[0]), generator=generator(cfg.seed, Stream.VALID_SPLIT))
            self.split["valid"] = (x[perm[:n_valid]], y[perm[:n_valid]])
            keep = perm[n_valid:].sort().values  # the training examples keep their order
            x, y = x[keep], y[keep]
        self.split["train"] = (x, y)
        self.data = data

    def build_model(self, ctx: BuildContext) -> nn.Module:
        cfg = self.config
        if ctx.flavour == "fp32":
            factory = seeded_fp32_factory(ctx.generator, cfg.network.init_scale)
        elif ctx.flavour == "hwa":
            factory = ctx.hwa_factory(cfg, seeded_fp32_factory(ctx.generator, cfg.network.init_scale))
        elif ctx.flavour == "pcm":
            options: dict[str, Any] = {
                "device_model": cfg.device_model, "device_params": cfg.device_params,
                "crossbar": cfg.crossbar, "seed": ctx.device_seed, "device": cfg.device,
                "t_s": ctx.t_start_s,  # devices are first programmed at the clock's start
                "backward_weights": cfg.backward_weights,
            }
            if cfg.network.init_scale != 1.0:
                options["init"] = uniform_init(cfg.network.init_scale)
            factory = make_linear_factory("pcm", **options)
        else:
            with ctx.seeded_global_rng():  # aihwkit draws from the global generator
                aihwkit = make_linear_factory("aihwkit", **cfg.aihwkit.factory_options())
                return SpikingClassifier(cfg.network, aihwkit, generator=ctx.generator)
        return SpikingClassifier(cfg.network, factory, generator=ctx.generator)

    def n_train(self) -> int:
        return int(self.split["train"][0].shape[0])

    def _encode(self, x: Tensor, gen: torch.Generator) -> Tensor:
        cfg = self.config
        return encode(cfg.encoder, x, cfg.steps, generator=gen, **dataclasses.asdict(cfg.encoder_params))

    def train_step(self, model: nn.Module, indices: list[int], streams: dict[str, torch.Generator],
                   set_time: Callable[[], None]) -> tuple[TrainStep, int]:
        device = torch.device(self.config.device)
        x, y = self.split["train"]
        idx = torch.tensor(indices, dtype=torch.long)
        xb, yb = x[idx].to(device), y[idx].to(device)
        inputs = self._encode(xb, streams["train_input"])
        set_time()
        logits = model(inputs).logits
        loss = F.cross_entropy(logits, yb)
        correct = int((logits.detach().argmax(dim=-1) == yb).sum())
        sums = {"loss_sum": float(loss.detach()) * int(yb.shape[0]), "correct": float(correct),
                "n": float(yb.shape[0])}
        return TrainStep(loss, sums), self.config.steps

    def train_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        n = max(sums.get("n", 0.0), 1.0)
        return {"train_loss": sums.get("loss_sum", 0.0) / n, "train_accuracy": sums.get("correct", 0.0) / n}

    def progress_text(self, sums: dict[str, float]) -> str:
        return f"acc={self.train_metrics(sums)['train_accuracy']:.3f}"

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        """Mean cross-entropy and accuracy; the encoding is drawn from a stream re-seeded on every
        call, so every evaluation sees the same spike trains."""
        cfg = self.config
        device = torch.device(cfg.device)
        gen = generator(cfg.seed, Stream.EVAL_INPUT, device=device)
        x, y = self.split[split]
        bs = cfg.eval_batch_size
        loss_sum, correct = 0.0, 0
        for i in range(0, x.shape[0], bs):
            xb, yb = x[i : i + bs].to(device), y[i : i + bs].to(device)
            logits = model(self._encode(xb, gen)).logits
            loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(dim=-1) == yb).sum())
        n = max(int(x.shape[0]), 1)
        return {"loss": loss_sum / n, "accuracy": correct / n}

    def splits(self) -> tuple[str, ...]:
        return ("valid", "test") if "valid" in self.split else ("test",)

    def summary(self) -> dict[str, Any]:
        return {"dataset": self.config.dataset, "network": list(self.config.network.layers),
                "neuron": self.config.network.neuron,
                "surrogate": self.config.network.surrogate, "encoder": self.config.encoder,
                "steps": self.config.steps, "n_train": self.n_train(),
                "n_valid": int(self.split["valid"][0].shape[0]) if "valid" in self.split else 0,
                "n_test": int(self.split["test"][0].shape[0])}
