"""Next-step prediction of polyphonic music (JSB Chorales, Nottingham, Piano-midi.de, MuseData).

The network (:class:`pcmsim.networks.SNUNetwork`) reads the piano roll at step t and predicts the
88 keys of step t+1; the loss is the negative log-likelihood per time step summed over the keys
(Boulanger-Lewandowski et al., ICML 2012), the best epoch is the one of lowest validation NLL.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from pcmsim.data import available_datasets, load_dataset, pad_batch
from pcmsim.metrics import MusicMetrics, nll_sum_over_keys
from pcmsim.network_config import NetworkConfig, network_block
from pcmsim.networks import SNUNetwork, build_snu_network, set_marginal_output_bias
from pcmsim.readouts import readout_mismatch
from pcmsim.typedconfig import ConfigError, at_least, bad_value, choices

from ..config import RunConfig, override
from .base import BuildContext, Task, TrainStep, uniform_init


@dataclass(frozen=True)
class MusicConfig(RunConfig):
    """A music-prediction run: :class:`RunConfig` plus the data and the SNU network.

    Attributes:
        dataset: one of :func:`pcmsim.data.available_datasets`; data_format, data_dir: where and
            in which file format it is read.
        network: the network (:class:`pcmsim.NetworkConfig`; default: 88-150-88 SNUs with an sSNU
            readout); its readout gives logits at every step (``ssnu`` or ``sigmoid``).
        output_bias_init: ``marginal`` (the logit of each key's training frequency) or ``threshold``.
        max_train_sequences, max_eval_sequences: keep only the first N sequences of a split.
    """

    task: str = "music"
    dataset: str = field(default="jsb", metadata=choices(lambda: available_datasets("music")))
    data_format: str | None = None
    data_dir: str | None = None
    network: NetworkConfig = field(default_factory=NetworkConfig, metadata=network_block(NetworkConfig))
    output_bias_init: Literal["marginal", "threshold"] = "marginal"
    max_train_sequences: int | None = field(default=None, metadata=at_least(1))
    max_eval_sequences: int | None = field(default=None, metadata=at_least(1))
    drift_times: list[str | float] = override("drift_times", ["1min", "1h", "1d", "1mo", "1y"])

    def validate(self, source: str = "config", path: str = "") -> None:
        super().validate(source, path)
        expected = readout_mismatch(self.network.readout, per_step=True, use="music prediction")
        if expected is not None:
            raise bad_value(source, "network.readout", self.network.readout, expected)


def seeded_linear(generator: torch.Generator, init_scale: float = 1.0) -> Callable[[int, int, bool], nn.Module]:
    """``nn.Linear`` layers initialised as ``nn.Linear.reset_parameters`` does, from ``generator``; the
    weights times ``init_scale`` (``U(±init_scale/√fan_in)``)."""

    def factory(n_in: int, n_out: int, bias: bool) -> nn.Module:
        layer = nn.utils.skip_init(nn.Linear, n_in, n_out, bias=bias)
        with torch.no_grad():
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            if init_scale != 1.0:
                layer.weight.mul_(init_scale)
            if layer.bias is not None:
                bound = 1 / math.sqrt(n_in) if n_in > 0 else 0.0
                layer.bias.uniform_(-bound, bound, generator=generator)
        return layer

    return factory


class MusicTask(Task):
    name = "music"
    config_class = MusicConfig
    metric = "nll"
    higher_is_better = False
    config: MusicConfig
    input_streams: ClassVar[tuple[str, ...]] = ()

    def load_data(self) -> None:
        cfg = self.config
        self.data: dict[str, list[Tensor]] = {}
        for split in ("train", "valid", "test"):
            seqs = load_dataset(cfg.dataset, split, data_dir=cfg.data_dir, fmt=cfg.data_format)
            seqs = [s for s in seqs if s.shape[0] >= 2]
            limit = cfg.max_train_sequences if split == "train" else cfg.max_eval_sequences
            if limit is not None:
                seqs = seqs[:limit]
            self.data[split] = seqs

    def build_model(self, ctx: BuildContext) -> nn.Module:
        cfg = self.config
        net = cfg.network
        if ctx.flavour == "fp32":
            return SNUNetwork(net, seeded_linear(ctx.generator, net.init_scale), generator=ctx.generator)
        if ctx.flavour == "hwa":
            return SNUNetwork(net, ctx.hwa_factory(cfg, seeded_linear(ctx.generator, net.init_scale)),
                              generator=ctx.generator)
        if ctx.flavour == "pcm":
            options: dict[str, Any] = {} if net.init_scale == 1.0 else {"init": uniform_init(net.init_scale)}
            return build_snu_network(
                net, "pcm", device_model=cfg.device_model, device_params=cfg.device_params,
                crossbar=cfg.crossbar, seed=ctx.device_seed,
                backward_weights=cfg.backward_weights, generator=ctx.generator, **options,
            )
        with ctx.seeded_global_rng():  # aihwkit's layers draw their initial weights from it
            return build_snu_network(net, "aihwkit", generator=ctx.generator, **cfg.aihwkit.factory_options())

    @torch.no_grad()
    def after_build(self, model: nn.Module) -> None:
        """With ``output_bias_init='marginal'``, set the output bias to the logit of each key's
        frequency in the training targets, so that training starts from the marginal distribution
        instead of p = sigmoid(−threshold) for all keys."""
        if self.config.output_bias_init != "marginal":
            return
        try:
            set_marginal_output_bias(model, [s[1:] for s in self.data["train"]])  # type: ignore[arg-type]
        except ValueError as err:
            raise ConfigError(f"output_bias_init='marginal': {err}") from None

    def n_train(self) -> int:
        return len(self.data["train"])

    def train_step(self, model: nn.Module, indices: list[int], streams: dict[str, torch.Generator],
                   set_time: Callable[[], None]) -> tuple[TrainStep, int]:
        seqs = self.data["train"]
        batch = pad_batch([seqs[j] for j in indices])
        device = self._device(model)
        inputs, targets, mask = batch.inputs.to(device), batch.targets.to(device), batch.mask.to(device)
        set_time()
        logits = model(inputs)
        steps = mask.sum()
        loss_sum = nll_sum_over_keys(logits, targets, mask)
        return TrainStep(loss_sum / steps, {"loss_sum": float(loss_sum.detach()), "steps": float(steps)}), \
            int(inputs.shape[0])

    def train_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        return {"train_nll": sums.get("loss_sum", 0.0) / max(sums.get("steps", 0.0), 1.0)}

    def progress_text(self, sums: dict[str, float]) -> str:
        return f"nll={self.train_metrics(sums)['train_nll']:.3f}"

    @torch.no_grad()
    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        metrics = MusicMetrics()
        seqs = self.data[split]
        bs = self.config.eval_batch_size
        device = self._device(model)
        for i in range(0, len(seqs), bs):
            batch = pad_batch(seqs[i : i + bs])
            logits = model(batch.inputs.to(device))
            metrics.update(logits, batch.targets.to(device), batch.mask.to(device))
        return {"nll": metrics.nll, "frame_accuracy": metrics.frame_accuracy}

    def splits(self) -> tuple[str, ...]:
        return ("valid", "test")

    def summary(self) -> dict[str, Any]:
        return {"dataset": self.config.dataset, "network": list(self.config.network.layers),
                "n_train": len(self.data["train"]), "n_valid": len(self.data["valid"]),
                "n_test": len(self.data["test"])}

    @staticmethod
    def _device(model: nn.Module) -> torch.device:
        p = next(model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")
