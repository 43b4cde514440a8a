"""Spiking classification (Iris, 8×8 digits, MNIST) in software or with the hardware in the loop.

The network is a feed-forward spiking classifier (:class:`pcmsim.lif.SpikingClassifier`): hidden
LIF layers of Gerum & Schilling (Neural Computation 33(10), 2021), or SNU/sSNU layers of Woźniak et
al. (Nat. Mach. Intell. 2, 325, 2020), and a non-spiking integrator readout whose last-step
potential is the logit vector of a softmax cross-entropy loss. Intensities in [0, 1] become input
sequences ``[T, B, n]`` through an encoder (:mod:`pcmsim.encoders`).

Flavours: ``fp32`` (``nn.Linear`` synapses, a torch optimiser) and ``pcm`` (synapses on simulated
PCM crossbars, :class:`pcmsim.analog.AnalogLinear`; the optimiser's proposed ΔW is applied as
device pulses by :class:`hardware_in_loop.updater.HardwareInTheLoop`; the LIF leaks and the
biases stay digital).

A run writes one folder (every file atomically: temporary file + rename)::

    config.json      the ClassificationConfig
    metrics.jsonl    one line per epoch: train loss/accuracy, test loss/accuracy, times, pulses
    results.json     the headline numbers, also returned by :func:`run_classification`

Every random draw comes from a ``torch.Generator`` derived from the config's seed (weights, leaks,
shuffling, encoding, device noise), so a run on the CPU repeats bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcmsim.classification_data import (
    DATASETS,
    ClassificationData,
    Fetch,
    load_classification_data,
    urllib_fetch,
)
from pcmsim.encoders import ENCODER_OPTIONS, ENCODERS, encode
from pcmsim.lif import NEURONS, READOUTS, SURROGATES, SpikingClassifier, SpikingClassifierConfig
from pcmsim.networks import LinearFactory, make_linear_factory

from .checkpoint import write_json, write_jsonl
from .config import ConfigError, parse_duration_s

FLAVOURS_CLASSIFICATION = ("fp32", "pcm")
OPTIMIZERS = ("adam", "sgd")

NETWORK_FIELDS: dict[str, str] = {
    "layers": "a list of ≥ 2 positive layer widths, input first, classes last",
    "neuron": f"one of {', '.join(NEURONS)}",
    "surrogate": f"one of {', '.join(SURROGATES)}",
    "beta": "a finite number > 0",
    "gamma": "a finite number > 0",
    "readout": f"one of {', '.join(READOUTS)}",
    "dt": "a finite number > 0",
    "refractory": "an integer ≥ 0 (steps)",
    "threshold": "a finite number > 0",
    "train_leak": "true or false",
    "decay": "a number in [0, 1]",
    "init_scale": "a finite number > 0 (multiplies the U(±1/√fan_in) initial weights)",
}
"""Fields of the ``network`` object and what each expects."""


def _derive_seed(seed: int, *tags: int) -> int:
    s = seed & 0xFFFFFFFF
    for tag in tags:
        s = (s * 6364136223846793005 + 1442695040888963407 + tag) & 0x7FFFFFFFFFFFFFFF
    return s


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class ClassificationConfig:
    """Everything one classification run needs; ``from_dict`` validates a JSON object.

    Attributes:
        dataset: ``iris``, ``digits`` (8×8) or ``mnist``.
        data_dir: folder of the MNIST IDX files (default ``$PCMSIM_DATA/mnist``).
        download: fetch missing MNIST files (SHA-256 checked).
        train_limit, test_limit: keep only the first N examples of a split.
        encoder: ``poisson``, ``tile`` or ``latency``; ``encoder_params`` its options.
        steps: ``T``, time steps per example.
        network: ``layers`` (sizes, input first) and neuron settings (see ``NETWORK_FIELDS``).
        flavour: ``fp32`` or ``pcm``.
        device_model, device_params, crossbar: the PCM flavour's devices and crossbar config.
        update_scheme, scheme_params, clock: the hardware-in-the-loop update and its clock.
        optimizer (``adam``/``sgd``), lr, momentum, weight_decay, grad_clip: the digital optimiser;
            the learning rate of epoch ``e`` (from 0) is ``lr · lr_decay**e``.
        epochs, batch_size, eval_batch_size, seed: the loop.
        drift_times: PCM flavour: also evaluate at these delays after training (``"1h"``, 86400, ...),
            once per drift compensation mode in ``compensations`` (``none``, ``global``, ``per-column``).
        device: torch device (``cpu``, ``cuda``).
        num_threads: ``torch.set_num_threads`` for the run (None: leave as is).
    """

    dataset: str = "digits"
    network: dict[str, Any] = field(default_factory=lambda: {"layers": [64, 128, 10]})
    task: str = "classification"
    name: str | None = None
    data_dir: str | None = None
    download: bool = True
    train_limit: int | None = None
    test_limit: int | None = None
    encoder: str = "poisson"
    encoder_params: dict[str, Any] = field(default_factory=dict)
    steps: int = 20
    flavour: str = "fp32"
    device_model: str = "pcm-nandakumar2018"
    device_params: dict[str, Any] = field(default_factory=dict)
    crossbar: dict[str, Any] = field(default_factory=dict)
    update_scheme: str = "mixed-precision"
    scheme_params: dict[str, Any] = field(default_factory=dict)
    clock: dict[str, float] = field(default_factory=dict)
    optimizer: str = "adam"
    lr: float = 1e-3
    lr_decay: float = 1.0
    momentum: float = 0.9
    weight_decay: float = 0.0
    grad_clip: float | None = None
    epochs: int = 20
    batch_size: int = 32
    eval_batch_size: int = 256
    seed: int = 0
    drift_times: list[Any] = field(default_factory=list)
    compensations: list[str] = field(default_factory=lambda: ["none", "global"])
    device: str = "cpu"
    num_threads: int | None = None

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Any, *, source: str = "config") -> ClassificationConfig:
        """Build and validate; unknown fields or values raise one :class:`ConfigError` line."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object of fields, got {type(data).__name__}")
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ConfigError(
                f"{source}: unknown field {unknown[0]!r}; valid fields: {', '.join(sorted(valid))}"
            )
        kwargs = dict(data)
        for key in ("network", "encoder_params", "device_params", "crossbar", "scheme_params", "clock"):
            if key in kwargs and isinstance(kwargs[key], dict):
                kwargs[key] = dict(kwargs[key])
        for key in ("drift_times", "compensations"):
            if key in kwargs and isinstance(kwargs[key], list):
                kwargs[key] = list(kwargs[key])
        cfg = cls(**kwargs)
        cfg.validate(source)
        return cfg

    @classmethod
    def from_json(cls, path: str | Path) -> ClassificationConfig:
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{p}: cannot read the config ({exc})") from None
        return cls.from_dict(data, source=str(p))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> ClassificationConfig:
        cfg = dataclasses.replace(self, **changes)
        cfg.validate("config")
        return cfg

    def classifier_config(self) -> SpikingClassifierConfig:
        net = {k: v for k, v in self.network.items() if k not in ("layers", "init_scale")}
        return SpikingClassifierConfig(sizes=tuple(int(n) for n in self.network["layers"]), **net)

    @property
    def init_scale(self) -> float:
        return float(self.network.get("init_scale", 1.0))

    # -- validation ------------------------------------------------------------------------
    def validate(self, source: str = "config") -> None:
        """Check every field; raise :class:`ConfigError` naming the field, the value and the expectation."""

        def bad(name: str, value: Any, expected: str) -> ConfigError:
            return ConfigError(f"{source}: field {name!r} = {value!r} is invalid: expected {expected}")

        def one_of(name: str, options: tuple[str, ...]) -> None:
            value = getattr(self, name)
            if value not in options:
                raise bad(name, value, f"one of {', '.join(options)}")

        if self.task != "classification":
            raise bad("task", self.task, "'classification'")
        if self.name is not None and not isinstance(self.name, str):
            raise bad("name", self.name, "null or a string")
        one_of("dataset", DATASETS)
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise bad("data_dir", self.data_dir, "null or a folder path")
        for name in ("download",):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, getattr(self, name), "true or false")
        for name in ("train_limit", "test_limit", "num_threads"):
            v = getattr(self, name)
            if v is not None and not (_is_int(v) and v >= 1):
                raise bad(name, v, "null or an integer ≥ 1")
        one_of("encoder", ENCODERS)
        if not isinstance(self.encoder_params, dict):
            raise bad("encoder_params", self.encoder_params, "an object of encoder options")
        allowed = ENCODER_OPTIONS[self.encoder]
        for key, value in self.encoder_params.items():
            if key not in allowed:
                raise bad(
                    f"encoder_params.{key}",
                    value,
                    f"an option of encoder {self.encoder!r}: {', '.join(allowed) or 'none'}",
                )
        if self.encoder == "poisson":
            rate, dt = self.encoder_params.get("max_rate", 1.0), self.encoder_params.get("dt", 1.0)
            for key, v in (("max_rate", rate), ("dt", dt)):
                if not (_is_num(v) and v > 0):
                    raise bad(f"encoder_params.{key}", v, "a finite number > 0")
            if rate * dt > 1.0:
                raise bad(
                    "encoder_params", self.encoder_params, "max_rate·dt ≤ 1 (a spike probability per step)"
                )
        if self.encoder == "latency" and self.encoder_params.get("zero", "none") not in ("none", "last"):
            raise bad("encoder_params.zero", self.encoder_params["zero"], "'none' or 'last'")
        for name in ("steps", "epochs", "batch_size", "eval_batch_size"):
            v = getattr(self, name)
            if not (_is_int(v) and v >= 1):
                raise bad(name, v, "an integer ≥ 1")
        if not _is_int(self.seed) or self.seed < 0:
            raise bad("seed", self.seed, "an integer ≥ 0")
        self._validate_network(bad)
        one_of("flavour", FLAVOURS_CLASSIFICATION)
        for name in ("device_params", "crossbar", "scheme_params", "clock"):
            if not isinstance(getattr(self, name), dict):
                raise bad(name, getattr(self, name), "an object")
        if self.flavour == "pcm":
            self._validate_pcm(source, bad)
        one_of("optimizer", OPTIMIZERS)
        for name in ("lr", "lr_decay"):
            v = getattr(self, name)
            if not (_is_num(v) and v > 0):
                raise bad(name, v, "a finite number > 0")
        for name in ("momentum", "weight_decay"):
            v = getattr(self, name)
            if not (_is_num(v) and v >= 0):
                raise bad(name, v, "a finite number ≥ 0")
        if self.grad_clip is not None and not (_is_num(self.grad_clip) and self.grad_clip > 0):
            raise bad("grad_clip", self.grad_clip, "null or a finite number > 0")
        if not isinstance(self.drift_times, list):
            raise bad("drift_times", self.drift_times, 'a list of delays such as "1h", "1d" or seconds')
        for label in self.drift_times:
            try:
                parse_duration_s(label)
            except ConfigError:
                raise bad("drift_times", label, 'delays such as 60, "1min", "1h", "1d", "1y" (≥ 0)') from None
        modes = ("none", "global", "per-column")
        if not (isinstance(self.compensations, list) and all(m in modes for m in self.compensations)):
            raise bad("compensations", self.compensations, f"a list of {', '.join(modes)}")
        if not isinstance(self.device, str):
            raise bad("device", self.device, "a torch device name such as 'cpu' or 'cuda'")
        try:
            torch.device(self.device)
        except (RuntimeError, ValueError):
            raise bad("device", self.device, "a torch device name such as 'cpu' or 'cuda'") from None

    def _validate_network(self, bad: Any) -> None:
        net = self.network
        if not isinstance(net, dict):
            raise bad("network", net, "an object with 'layers' and neuron settings")
        for key, value in net.items():
            if key not in NETWORK_FIELDS:
                raise bad(f"network.{key}", value, f"a known network field: {', '.join(NETWORK_FIELDS)}")
        layers = net.get("layers")
        if not (isinstance(layers, list) and len(layers) >= 2 and all(_is_int(n) and n >= 1 for n in layers)):
            raise bad("network.layers", layers, NETWORK_FIELDS["layers"])
        choices = {"neuron": NEURONS, "surrogate": SURROGATES, "readout": READOUTS}
        for key, options in choices.items():
            if key in net and net[key] not in options:
                raise bad(f"network.{key}", net[key], NETWORK_FIELDS[key])
        for key in ("beta", "gamma", "dt", "threshold", "init_scale"):
            if key in net and not (_is_num(net[key]) and net[key] > 0):
                raise bad(f"network.{key}", net[key], NETWORK_FIELDS[key])
        if "refractory" in net and not (_is_int(net["refractory"]) and net["refractory"] >= 0):
            raise bad("network.refractory", net["refractory"], NETWORK_FIELDS["refractory"])
        if "train_leak" in net and not isinstance(net["train_leak"], bool):
            raise bad("network.train_leak", net["train_leak"], NETWORK_FIELDS["train_leak"])
        if "decay" in net and not (_is_num(net["decay"]) and 0 <= net["decay"] <= 1):
            raise bad("network.decay", net["decay"], NETWORK_FIELDS["decay"])
        n_in = {"iris": 4, "digits": 64, "mnist": 784}[self.dataset]
        n_out = {"iris": 3, "digits": 10, "mnist": 10}[self.dataset]
        if layers[0] != n_in or layers[-1] != n_out:
            raise bad(
                "network.layers",
                layers,
                f"{n_in} inputs first and {n_out} classes last for dataset {self.dataset!r}",
            )

    def _validate_pcm(self, source: str, bad: Any) -> None:
        import device_models

        from .schemes import available_schemes

        if self.device_model not in device_models.available():
            raise bad("device_model", self.device_model, f"one of {', '.join(device_models.available())}")
        try:
            device_models.get(self.device_model, **self.device_params)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{source}: field 'device_params': {exc}") from None
        if self.update_scheme not in available_schemes():
            raise bad("update_scheme", self.update_scheme, f"one of {', '.join(available_schemes())}")
        from pcmsim.crossbar import CrossbarConfig

        try:
            CrossbarConfig.from_dict(dict(self.crossbar))
        except (ValueError, TypeError, KeyError) as exc:
            raise ConfigError(f"{source}: field 'crossbar': {exc}") from None
        from .clock import ClockConfig

        try:
            ClockConfig(**self.clock)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{source}: field 'clock': {exc}") from None


def load_classification_config(data: dict[str, Any] | str | Path) -> ClassificationConfig:
    """A config from a dict or a JSON file path."""
    if isinstance(data, dict):
        return ClassificationConfig.from_dict(data)
    return ClassificationConfig.from_json(data)


# ---------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------


def seeded_fp32_factory(generator: torch.Generator, init_scale: float = 1.0) -> LinearFactory:
    """``nn.Linear`` factory whose weights are drawn from ``generator``: ``U(±init_scale/√fan_in)``.

    This is PyTorch's default ``nn.Linear`` initialisation (times ``init_scale``), drawn from the
    run's generator instead of the global one.
    """

    def factory(n_in: int, n_out: int, bias: bool) -> nn.Module:
        layer = nn.Linear(n_in, n_out, bias=bias)
        bound = init_scale / math.sqrt(n_in)
        with torch.no_grad():
            layer.weight.copy_((torch.rand(n_out, n_in, generator=generator) * 2 - 1) * bound)
            if layer.bias is not None:
                layer.bias.copy_((torch.rand(n_out, generator=generator) * 2 - 1) * bound)
        return layer

    return factory


def build_classifier(config: ClassificationConfig) -> SpikingClassifier:
    """The network of ``config`` in its flavour (weights and leaks drawn from the config's seed)."""
    gen = torch.Generator().manual_seed(_derive_seed(config.seed, 2))
    if config.flavour == "fp32":
        factory = seeded_fp32_factory(gen, config.init_scale)
    else:
        from .clock import ClockConfig

        options: dict[str, Any] = {
            "device_model": config.device_model,
            "device_params": dict(config.device_params) or None,
            "crossbar": dict(config.crossbar) or None,
            "seed": _derive_seed(config.seed, 4),
            "device": config.device,
            "t_s": ClockConfig(**config.clock).t_start_s,  # devices are first programmed at the clock's start
        }
        if config.init_scale != 1.0:
            scale = config.init_scale

            def init(w: Tensor, g: torch.Generator) -> None:
                bound = scale / math.sqrt(w.shape[1])
                w.uniform_(-bound, bound, generator=g)

            options["init"] = init
        factory = make_linear_factory("pcm", **options)
    return SpikingClassifier(config.classifier_config(), factory, generator=gen)


def _optimizer(config: ClassificationConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def _analog_layers(model: nn.Module) -> list[nn.Module]:
    from pcmsim.analog import AnalogLinear

    return [m for m in model.modules() if isinstance(m, AnalogLinear)]


@torch.no_grad()
def evaluate_classifier(
    model: SpikingClassifier,
    x: Tensor,
    y: Tensor,
    config: ClassificationConfig,
    *,
    batch_size: int | None = None,
) -> dict[str, float]:
    """Mean cross-entropy and accuracy on ``(x, y)``; the encoding is drawn from a fixed stream.

    The encoder's generator is re-seeded from the config's seed on every call, so every
    evaluation sees the same spike trains.
    """
    device = torch.device(config.device)
    gen = torch.Generator(device=device).manual_seed(_derive_seed(config.seed, 5))
    bs = batch_size or config.eval_batch_size
    model.eval()
    loss_sum, correct = 0.0, 0
    for i in range(0, x.shape[0], bs):
        xb, yb = x[i : i + bs].to(device), y[i : i + bs].to(device)
        inputs = encode(config.encoder, xb, config.steps, generator=gen, **config.encoder_params)
        logits = model(inputs).logits
        loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
        correct += int((logits.argmax(dim=-1) == yb).sum())
    n = max(int(x.shape[0]), 1)
    return {"loss": loss_sum / n, "accuracy": correct / n}


@torch.no_grad()
def _drift_accuracy(
    model: SpikingClassifier, hil: Any, t_end_s: float, data: ClassificationData, cfg: ClassificationConfig
) -> dict[str, dict[str, float]]:
    """Test accuracy at each delay of ``cfg.drift_times`` after training, per compensation mode.

    The reference readout of the compensation (:mod:`pcmsim.compensation`) is taken at the end of
    training; the devices are left as they are and the layers are set back to no compensation at
    ``t_end_s`` afterwards.
    """
    from pcmsim.compensation import calibrate_network, recalibrate_network

    if any(mode != "none" for mode in cfg.compensations):
        calibrate_network(model, t_end_s)
    out: dict[str, dict[str, float]] = {}
    for mode in cfg.compensations:
        accs: dict[str, float] = {}
        for label in cfg.drift_times:
            t_s = t_end_s + parse_duration_s(label)
            hil.set_time(t_s)
            recalibrate_network(model, t_s, mode)
            accs[str(label)] = evaluate_classifier(model, data.x_test, data.y_test, cfg)["accuracy"]
        out[mode] = accs
    recalibrate_network(model, t_end_s, "none")
    hil.set_time(t_end_s)
    return out


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


def run_classification(
    config: ClassificationConfig | dict[str, Any],
    out_dir: str | Path,
    *,
    data: ClassificationData | None = None,
    fetch: Fetch = urllib_fetch,
    log: Any = None,
) -> dict[str, Any]:
    """Train and evaluate a spiking classifier; write ``config.json``, ``metrics.jsonl``, ``results.json``.

    Args:
        config: a :class:`ClassificationConfig` or its JSON dict (validated).
        out_dir: the run's folder (created).
        data: use this dataset instead of loading ``config.dataset`` (tests).
        fetch: the MNIST download function (injectable).
        log: ``log(str)`` called once per epoch (e.g. ``print``), or None.

    Returns:
        the results dict (also in ``results.json``).
    """
    cfg = config if isinstance(config, ClassificationConfig) else ClassificationConfig.from_dict(config)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "config.json", cfg.to_dict())
    old_threads = torch.get_num_threads()
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    try:
        return _run(cfg, out, data, fetch, log)
    finally:
        torch.set_num_threads(old_threads)


def _run(
    cfg: ClassificationConfig, out: Path, data: ClassificationData | None, fetch: Fetch, log: Any
) -> dict[str, Any]:
    t_start = time.perf_counter()
    device = torch.device(cfg.device)
    if data is None:
        data = load_classification_data(
            cfg.dataset,
            seed=cfg.seed,
            root=cfg.data_dir,
            download=cfg.download,
            fetch=fetch,
            train_limit=cfg.train_limit,
            test_limit=cfg.test_limit,
        )
    sizes = cfg.network["layers"]
    if sizes[0] != data.n_features or sizes[-1] < data.n_classes:
        raise ConfigError(
            f"config: field 'network.layers' = {sizes!r} is invalid: expected {data.n_features} inputs and "
            f"{data.n_classes} classes for the data"
        )
    model = build_classifier(cfg).to(device)
    optimizer = _optimizer(cfg, model)
    hil = None
    clock = None
    if cfg.flavour == "pcm":
        from .clock import Clock, ClockConfig
        from .updater import HardwareInTheLoop

        clock = Clock(ClockConfig(**cfg.clock))
        hil_gen = torch.Generator().manual_seed(_derive_seed(cfg.seed, 3))
        hil = HardwareInTheLoop(
            model, optimizer, cfg.update_scheme, clock=clock, generator=hil_gen, **dict(cfg.scheme_params)
        )

    def set_time() -> None:
        if hil is not None and clock is not None:
            hil.set_time(clock.now_s)

    encode_gen = torch.Generator(device=device).manual_seed(_derive_seed(cfg.seed, 6))
    x_train, y_train = data.x_train, data.y_train
    n_train = int(x_train.shape[0])
    history: list[dict[str, Any]] = []
    totals = {"pulses_set": 0, "pulses_reset": 0, "refreshes": 0}
    best = {"test_accuracy": -1.0, "epoch": 0}
    train_wall = 0.0
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr * cfg.lr_decay**epoch
        model.train()
        order = torch.randperm(
            n_train, generator=torch.Generator().manual_seed(_derive_seed(cfg.seed, 1, epoch))
        )
        loss_sum, correct = 0.0, 0
        for i in range(0, n_train, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            xb, yb = x_train[idx].to(device), y_train[idx].to(device)
            inputs = encode(cfg.encoder, xb, cfg.steps, generator=encode_gen, **cfg.encoder_params)
            set_time()
            logits = model(inputs).logits
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if hil is not None and clock is not None:
                clock.forward_pass(cfg.steps)
                stats = hil.step()
                for key in totals:
                    totals[key] += int(getattr(stats, key))
                clock.batch_done()
            else:
                optimizer.step()
            loss_sum += float(loss.detach()) * int(yb.shape[0])
            correct += int((logits.detach().argmax(dim=-1) == yb).sum())
        train_wall += time.perf_counter() - t0
        set_time()
        test = evaluate_classifier(model, data.x_test, data.y_test, cfg)
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "train_loss": loss_sum / n_train,
            "train_accuracy": correct / n_train,
            "test_loss": test["loss"],
            "test_accuracy": test["accuracy"],
            "wall_time_s": time.perf_counter() - t_start,
        }
        if hil is not None and clock is not None:
            row.update(dict(totals))
            row["simulated_time_s"] = clock.now_s
            clock.epoch_done()
        history.append(row)
        write_jsonl(out / "metrics.jsonl", history)
        if test["accuracy"] > best["test_accuracy"]:
            best = {"test_accuracy": test["accuracy"], "epoch": epoch + 1}
        if log is not None:
            log(
                f"epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f}"
                f" acc {row['train_accuracy']:.4f}"
                f"  test acc {row['test_accuracy']:.4f}"
            )

    last = history[-1]
    results: dict[str, Any] = {
        "task": "classification",
        "name": cfg.name,
        "dataset": cfg.dataset,
        "flavour": cfg.flavour,
        "network": list(sizes),
        "neuron": cfg.classifier_config().neuron,
        "surrogate": cfg.classifier_config().surrogate,
        "encoder": cfg.encoder,
        "steps": cfg.steps,
        "epochs": cfg.epochs,
        "n_train": n_train,
        "n_test": int(data.x_test.shape[0]),
        "final_train_loss": last["train_loss"],
        "final_train_accuracy": last["train_accuracy"],
        "final_test_accuracy": last["test_accuracy"],
        "final_test_loss": last["test_loss"],
        "best_test_accuracy": best["test_accuracy"],
        "best_epoch": best["epoch"],
        "train_wall_time_s": train_wall,
        "wall_time_s": 0.0,
        "seed": cfg.seed,
    }
    if hil is not None and clock is not None:
        analog = _analog_layers(model)
        results.update(
            {
                "device_model": cfg.device_model,
                "update_scheme": cfg.update_scheme,
                "n_devices": sum(int(m.crossbar.n_devices) for m in analog),
                **totals,
                "simulated_time_s": clock.now_s,
            }
        )
        if cfg.drift_times:
            results["drift_test_accuracy"] = _drift_accuracy(model, hil, clock.now_s, data, cfg)
    results["wall_time_s"] = time.perf_counter() - t_start
    write_json(out / "results.json", results)
    return results
