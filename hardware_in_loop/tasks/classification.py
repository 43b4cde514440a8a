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

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcmsim.classifier import SpikingClassifier, SpikingClassifierConfig
from pcmsim.data import ClassificationData, available_datasets, load_classification_data
from pcmsim.encoders import ENCODER_OPTIONS, ENCODERS, encode
from pcmsim.networks import LinearFactory, make_linear_factory
from pcmsim.typedconfig import ConfigError, at_least, bad_value, check, choices, load

from ..config import RunConfig, override
from ..seeds import Stream, generator
from .base import BuildContext, Task, TrainStep

CLASSIFIER_SHAPES: dict[str, tuple[int, int]] = {"iris": (4, 3), "digits": (64, 10), "mnist": (784, 10)}
"""Inputs and classes of each classification dataset (``pcmsim.data.available_datasets("classification")``)."""


def load_network(value: Any, source: str, path: str) -> dict[str, Any]:
    """Check a classifier ``network`` object: ``layers``, ``init_scale`` and the fields of
    :class:`pcmsim.classifier.SpikingClassifierConfig` (its types, names and limits)."""
    if not isinstance(value, dict):
        raise bad_value(source, path, value, "an object with 'layers' and neuron settings")
    net = dict(value)
    layers = net.pop("layers", None)
    init_scale = net.pop("init_scale", 1.0)
    if not (isinstance(layers, list) and len(layers) >= 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in layers)):
        raise bad_value(source, f"{path}.layers", layers, "a list of ≥ 2 positive layer widths, input first, "
                        "classes last")
    if not (isinstance(init_scale, (int, float)) and not isinstance(init_scale, bool)
            and math.isfinite(init_scale) and init_scale > 0):
        raise bad_value(source, f"{path}.init_scale", init_scale,
                        "a finite number > 0 (multiplies the U(±1/√fan_in) initial weights)")
    if "sizes" in net:
        raise ConfigError(f"{source}: unknown field '{path}.sizes'; the layer widths are '{path}.layers'")
    load(SpikingClassifierConfig, {"sizes": list(layers), **net}, source=source, path=path)
    return dict(value)


@dataclass(frozen=True)
class ClassificationConfig(RunConfig):
    """A classification run: :class:`RunConfig` plus data, encoder and the spiking classifier.

    Attributes:
        dataset: ``iris``, ``digits`` (8×8) or ``mnist``; data_dir: folder of the MNIST IDX files
            (default ``$PCMSIM_DATA/mnist``); download: fetch missing MNIST files (SHA-256 checked).
        train_limit, test_limit: keep only the first N examples of a split.
        valid_fraction: the share of the training set held out for validation (model selection,
            early stopping); 0: none, the run reports its last epoch.
        encoder, encoder_params: how intensities become spikes; steps: ``T`` per example.
        network: ``layers`` (sizes, input first), ``init_scale`` and the neuron settings of
            :class:`pcmsim.classifier.SpikingClassifierConfig`.
    """

    task: str = "classification"
    dataset: str = field(default="digits", metadata=choices(lambda: available_datasets("classification")))
    data_dir: str | None = None
    download: bool = True
    train_limit: int | None = field(default=None, metadata=at_least(1))
    test_limit: int | None = field(default=None, metadata=at_least(1))
    valid_fraction: float = field(default=0.0, metadata=check(lambda v: 0 <= v < 1, "0 ≤ valid_fraction < 1"))
    encoder: str = field(default="poisson", metadata=choices(lambda: ENCODERS))
    encoder_params: dict[str, Any] = field(default_factory=dict)
    steps: int = field(default=20, metadata=at_least(1))
    network: dict[str, Any] = field(default_factory=lambda: {"layers": [64, 128, 10]},
                                    metadata={"load": load_network})
    lr: float = override("lr", 1e-3)
    grad_clip: float | None = override("grad_clip", None)
    epochs: int = override("epochs", 20)
    batch_size: int = override("batch_size", 32)
    eval_batch_size: int = override("eval_batch_size", 256)
    drift_times: list[str | float] = override("drift_times", [])

    def validate(self, source: str = "config", path: str = "") -> None:
        super().validate(source, path)
        allowed = ENCODER_OPTIONS[self.encoder]
        for key, value in self.encoder_params.items():
            if key not in allowed:
                raise bad_value(source, f"encoder_params.{key}", value,
                                f"an option of encoder {self.encoder!r}: {', '.join(allowed) or 'none'}")
        if self.encoder == "poisson":
            rate, dt = self.encoder_params.get("max_rate", 1.0), self.encoder_params.get("dt", 1.0)
            for key, v in (("max_rate", rate), ("dt", dt)):
                if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
                    raise bad_value(source, f"encoder_params.{key}", v, "a finite number > 0")
            if rate * dt > 1.0:
                raise bad_value(source, "encoder_params", self.encoder_params,
                                "max_rate·dt ≤ 1 (a spike probability per step)")
        if self.encoder == "latency" and self.encoder_params.get("zero", "none") not in ("none", "last"):
            raise bad_value(source, "encoder_params.zero", self.encoder_params["zero"], "'none' or 'last'")
        layers = self.network["layers"]
        n_in, n_out = CLASSIFIER_SHAPES[self.dataset]
        if layers[0] != n_in or layers[-1] != n_out:
            raise bad_value(source, "network.layers", layers,
                            f"{n_in} inputs first and {n_out} classes last for dataset {self.dataset!r}")

    @property
    def has_validation(self) -> bool:
        return self.valid_fraction > 0

    def classifier_config(self) -> SpikingClassifierConfig:
        net = {k: v for k, v in self.network.items() if k not in ("layers", "init_scale")}
        return SpikingClassifierConfig(sizes=tuple(int(n) for n in self.network["layers"]), **net)

    @property
    def init_scale(self) -> float:
        return float(self.network.get("init_scale", 1.0))


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
        sizes = cfg.network["layers"]
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
            factory = seeded_fp32_factory(ctx.generator, cfg.init_scale)
        elif ctx.flavour == "hwa":
            factory = ctx.hwa_factory(cfg, seeded_fp32_factory(ctx.generator, cfg.init_scale))
        elif ctx.flavour == "pcm":
            options: dict[str, Any] = {
                "device_model": cfg.device_model, "device_params": dict(cfg.device_params) or None,
                "crossbar": dict(cfg.crossbar) or None, "seed": ctx.device_seed, "device": cfg.device,
                "t_s": ctx.t_start_s,  # devices are first programmed at the clock's start
                "backward_weights": cfg.backward_weights,
            }
            if cfg.init_scale != 1.0:
                scale = cfg.init_scale

                def init(w: Tensor, g: torch.Generator) -> None:
                    bound = scale / math.sqrt(w.shape[1])
                    w.uniform_(-bound, bound, generator=g)

                options["init"] = init
            factory = make_linear_factory("pcm", **options)
        else:
            with ctx.seeded_global_rng():  # aihwkit draws from the global generator
                return SpikingClassifier(cfg.classifier_config(), make_linear_factory("aihwkit", **dict(cfg.crossbar)),
                                         generator=ctx.generator)
        return SpikingClassifier(cfg.classifier_config(), factory, generator=ctx.generator)

    def n_train(self) -> int:
        return int(self.split["train"][0].shape[0])

    def _encode(self, x: Tensor, gen: torch.Generator) -> Tensor:
        cfg = self.config
        return encode(cfg.encoder, x, cfg.steps, generator=gen, **cfg.encoder_params)

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
        c = self.config.classifier_config()
        return {"dataset": self.config.dataset, "network": list(self.config.network["layers"]),
                "neuron": c.neuron, "surrogate": c.surrogate, "encoder": self.config.encoder,
                "steps": self.config.steps, "n_train": self.n_train(),
                "n_valid": int(self.split["valid"][0].shape[0]) if "valid" in self.split else 0,
                "n_test": int(self.split["test"][0].shape[0])}
