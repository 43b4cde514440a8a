"""Leaky integrate-and-fire (LIF) layers of Gerum & Schilling, trainable with a surrogate gradient.

R. C. Gerum and A. Schilling, "Integration of leaky-integrate-and-fire neurons in deep learning
architectures", Neural Computation 33(10), 2824–2848 (2021), arXiv:2004.13532. Their Keras
package (``tf_spiking``) runs, for every unit and time step, the discrete update::

    V_t = ReLU(I_t + (1 − leak) · V_{t−1} · Θ(1 − V_{t−1}))          membrane potential
    s_t = Θ(V_t − 1)                                                  spike (threshold 1)

with ``I_t = dt · (W x_t + b)`` (their ``w_input = dt``) and a trainable per-unit ``leak``
initialised uniformly in ``(0, 0.1·dt)``. ``Θ`` is the Heaviside step; in the backward pass the
spike's ``Θ`` gets a *surrogate* derivative (:func:`surrogate_derivative`), while the reset factor
``Θ(1 − V_{t−1})`` is treated as a constant (their ``theta_forget`` has a zero gradient), so the
gradient flows through ``V_{t−1}`` and ``leak`` but not through the reset decision.

Conventions of this module (where the paper's code leaves a choice):

- a spike is emitted when ``V_t ≥ threshold`` (their ``Θ(x) = 1[x ≥ 0]``), and a neuron that
  spiked at ``t−1`` starts step ``t`` from 0 (reset when ``V_{t−1} ≥ threshold``; their code resets
  only when ``V_{t−1} > 1`` and so differs only for ``V_{t−1}`` exactly at threshold);
- ``leak`` is clamped to ``[0, 1]`` in the forward pass (a trained leak cannot make the
  potential grow or change sign);
- an optional absolute *refractory period* of ``R`` steps (an extension; the paper's layer has
  none): after a spike at step ``t`` the neuron is silent at steps ``t+1 … t+R`` — its potential
  is held at 0, input current is discarded and it cannot spike — and it integrates again from
  ``V = 0`` at step ``t+R+1``. ``R = 0`` is the plain reset above.

Step math is in plain functions (:func:`spike_fn`, :func:`lif_step`, :func:`integrator_step`);
the modules wrap them in the style of :mod:`pcmsim.neurons` (SNU layers of Woźniak et al., Nat.
Mach. Intell. 2, 325 (2020)): a layer takes *any* linear module (``nn.Linear``,
``pcmsim.analog.AnalogLinear``, an aihwkit layer) and applies it to all time steps at once
(``[T·B, in]`` in one call), since ``W x_t`` does not depend on the state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .networks import LinearFactory, make_linear_factory
from .neurons import SNULayer

SurrogateName = Literal["flat", "superspike", "sigmoid", "esser"]
SURROGATES: tuple[str, ...] = ("flat", "superspike", "sigmoid", "esser")
NEURONS: tuple[str, ...] = ("lif", "snu", "ssnu")
READOUTS: tuple[str, ...] = ("integrator", "spike_count")


def surrogate_derivative(x: Tensor, name: str, beta: float = 10.0, gamma: float = 1.0) -> Tensor:
    """The surrogate ``dΘ/dx`` used in the backward pass of the spike ``Θ(x)``, ``x = V − threshold``.

    - ``flat``: 1 everywhere, no window — as in Gerum & Schilling's code (``theta_flat`` passes
      the incoming gradient through unchanged), the paper's default;
    - ``superspike``: ``1 / (1 + β|x|)²`` (Zenke & Ganguli 2018; β = 10 by default as in their code);
    - ``sigmoid``: ``β σ(βx)(1 − σ(βx))``, the derivative of ``σ(βx)`` (their code omits the factor β);
    - ``esser``: ``γ · max(0, 1 − |x|)`` (Esser et al. 2016; Bellec et al. 2018 use γ = 0.3); their
      code writes ``max(0, 1 − β|x|)`` instead, i.e. a window of half-width 1/β.
    """
    if name == "flat":
        return torch.ones_like(x)
    if name == "superspike":
        return 1.0 / (1.0 + beta * x.abs()) ** 2
    if name == "sigmoid":
        sig = torch.sigmoid(beta * x)
        return beta * sig * (1.0 - sig)
    if name == "esser":
        return gamma * torch.clamp(1.0 - x.abs(), min=0.0)
    raise ValueError(f"unknown surrogate {name!r}; expected one of {', '.join(SURROGATES)}")


class SurrogateSpike(torch.autograd.Function):
    """Heaviside ``Θ(x) = 1[x ≥ 0]`` forward; :func:`surrogate_derivative` backward."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, x: Tensor, name: str, beta: float, gamma: float
    ) -> Tensor:
        ctx.save_for_backward(x)
        ctx.name, ctx.beta, ctx.gamma = name, beta, gamma  # type: ignore[attr-defined]
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_out: Tensor
    ) -> tuple[Tensor, None, None, None]:
        (x,) = ctx.saved_tensors  # type: ignore[attr-defined]
        grad = surrogate_derivative(x, ctx.name, ctx.beta, ctx.gamma)  # type: ignore[attr-defined]
        return grad_out * grad, None, None, None


def spike_fn(x: Tensor, surrogate: str = "flat", beta: float = 10.0, gamma: float = 1.0) -> Tensor:
    """Spike ``Θ(x)`` with the named surrogate derivative (see :func:`surrogate_derivative`)."""
    if surrogate not in SURROGATES:
        raise ValueError(f"unknown surrogate {surrogate!r}; expected one of {', '.join(SURROGATES)}")
    return SurrogateSpike.apply(x, surrogate, float(beta), float(gamma))


@dataclass(frozen=True)
class LIFState:
    """State of a LIF layer between steps, all ``[B, n]``.

    ``v``: membrane potential ``V_{t−1}``; ``refractory``: remaining refractory steps (integer
    counts stored as floats, 0 = free to integrate).
    """

    v: Tensor
    refractory: Tensor


def lif_step(
    current: Tensor,
    state: LIFState,
    leak: Tensor | float,
    *,
    threshold: float = 1.0,
    surrogate: str = "flat",
    beta: float = 10.0,
    gamma: float = 1.0,
    refractory_steps: int = 0,
) -> tuple[Tensor, LIFState]:
    """One LIF time step of Gerum & Schilling (2021).

    ``V_t = ReLU(I_t + (1 − leak) · V_{t−1} · 1[V_{t−1} < threshold])``, ``s_t = Θ(V_t − threshold)``;
    while a refractory count is running, ``V_t = 0`` and ``s_t = 0``.

    Args:
        current: ``I_t``, ``[B, n]``.
        state: ``V_{t−1}`` and the refractory counters.
        leak: per-unit leak in ``[0, 1]`` (scalar or ``[n]``).
        threshold: firing threshold (1 in the paper).
        surrogate, beta, gamma: the spike's surrogate derivative (:func:`surrogate_derivative`).
        refractory_steps: ``R``, steps of silence after each spike (0: none).

    Returns:
        ``(s_t, new_state)``; ``new_state.v`` is ``V_t``.
    """
    v_prev = state.v
    keep = (v_prev < threshold).to(v_prev.dtype)  # reset factor Θ(1 − V_{t−1}); no gradient
    v = F.relu(current + (1.0 - leak) * v_prev * keep)
    if refractory_steps > 0:
        free = (state.refractory <= 0).to(v.dtype)
        v = v * free
    s = spike_fn(v - threshold, surrogate, beta, gamma)
    if refractory_steps > 0:
        counter = torch.where(
            s.detach() > 0,
            torch.full_like(state.refractory, float(refractory_steps)),
            torch.clamp(state.refractory - 1.0, min=0.0),
        )
    else:
        counter = state.refractory
    return s, LIFState(v=v, refractory=counter)


def integrator_step(current: Tensor, v_prev: Tensor) -> Tensor:
    """Non-spiking, non-leaky integrator: ``V_t = V_{t−1} + I_t``."""
    return v_prev + current


@dataclass(frozen=True)
class LIFOutput:
    """Outputs of a LIF layer over a sequence: ``spikes`` and membrane potentials ``v``, ``[T, B, n]``."""

    spikes: Tensor
    v: Tensor
    state: LIFState


def _uniform_leak(n: int, high: float, generator: torch.Generator | None) -> Tensor:
    # Uniform in (0, high): torch.rand draws in [0, 1); reflect to (0, 1].
    u = 1.0 - torch.rand(n, generator=generator)
    return u * high


class LIFLayer(nn.Module):
    """A layer of LIF units (Gerum & Schilling 2021) over any linear module.

    ``I_t = dt · (linear(x_t) + bias)``; dynamics of :func:`lif_step`.

    Args:
        linear: maps ``[N, in] → [N, out]``; applied to all ``T·B`` inputs at once.
        out_features: number of units ``n``.
        dt: time step; scales the input current (their ``w_input = dt``) and the leak's initial
            range ``(0, 0.1·dt)``.
        leak_init_max: upper end of the leak's uniform initialisation (default ``0.1·dt``).
        train_leak: make the per-unit leak a trainable parameter (the paper's choice; default).
        threshold: firing threshold (1).
        surrogate, beta, gamma: the spike's surrogate derivative (``flat`` by default, as in the paper).
        refractory: refractory period in steps (0: none), see the module docstring.
        bias: add a per-unit digital bias ``b`` (zeros initially) to the current.
        generator: draws the initial leaks.
    """

    def __init__(
        self,
        linear: nn.Module,
        out_features: int,
        *,
        dt: float = 1.0,
        leak_init_max: float | None = None,
        train_leak: bool = True,
        threshold: float = 1.0,
        surrogate: str = "flat",
        beta: float = 10.0,
        gamma: float = 1.0,
        refractory: int = 0,
        bias: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if surrogate not in SURROGATES:
            raise ValueError(f"unknown surrogate {surrogate!r}; expected one of {', '.join(SURROGATES)}")
        if dt <= 0:
            raise ValueError(f"dt={dt} is invalid; expected dt > 0")
        if int(refractory) != refractory or refractory < 0:
            raise ValueError(f"refractory={refractory!r} is invalid; expected an integer number of steps ≥ 0")
        if threshold <= 0:
            raise ValueError(f"threshold={threshold} is invalid; expected threshold > 0")
        high = 0.1 * dt if leak_init_max is None else float(leak_init_max)
        if not 0.0 < high <= 1.0:
            raise ValueError(f"leak_init_max={high} is invalid; expected 0 < leak_init_max ≤ 1")
        self.linear = linear
        self.out_features = out_features
        self.dt = float(dt)
        self.threshold = float(threshold)
        self.surrogate = surrogate
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.refractory = int(refractory)
        leak = _uniform_leak(out_features, high, generator)
        if train_leak:
            self.leak = nn.Parameter(leak)
        else:
            self.register_buffer("leak", leak)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def initial_state(self, batch: int, like: Tensor) -> LIFState:
        zeros = like.new_zeros(batch, self.out_features)
        return LIFState(v=zeros, refractory=zeros.clone())

    def currents(self, x: Tensor) -> Tensor:
        """``I_t`` for all steps, ``[T, B, n]``, from inputs ``[T, B, in]``."""
        steps, batch = x.shape[0], x.shape[1]
        wx = self.linear(x.reshape(steps * batch, -1)).reshape(steps, batch, self.out_features)
        if self.bias is not None:
            wx = wx + self.bias
        return self.dt * wx

    def forward(self, x: Tensor, state: LIFState | None = None) -> LIFOutput:
        """Run the layer over a sequence ``x`` of shape ``[T, B, in]``."""
        current = self.currents(x)
        st = state if state is not None else self.initial_state(x.shape[1], current)
        leak = self.leak.clamp(0.0, 1.0)
        spikes, vs = [], []
        for t in range(current.shape[0]):
            s, st = lif_step(
                current[t],
                st,
                leak,
                threshold=self.threshold,
                surrogate=self.surrogate,
                beta=self.beta,
                gamma=self.gamma,
                refractory_steps=self.refractory,
            )
            spikes.append(s)
            vs.append(st.v)
        return LIFOutput(spikes=torch.stack(spikes), v=torch.stack(vs), state=st)


@dataclass(frozen=True)
class ReadoutOutput:
    """``logits``: the readout at the last step, ``[B, n]``; ``potential``: ``[T, B, n]``."""

    logits: Tensor
    potential: Tensor

    def probabilities(self) -> Tensor:
        """Softmax over classes of the last-step logits."""
        return torch.softmax(self.logits, dim=-1)


class IntegratorReadout(nn.Module):
    """Non-spiking readout: a leak-free integrator of its input current (Gerum & Schilling 2021).

    ``V_t = V_{t−1} + dt · (linear(x_t) + b)``; the output is ``V_T`` (the LAST step), used as the
    logits of a softmax / cross-entropy loss.
    """

    def __init__(self, linear: nn.Module, out_features: int, *, dt: float = 1.0, bias: bool = True) -> None:
        super().__init__()
        self.linear = linear
        self.out_features = out_features
        self.dt = float(dt)
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    def forward(self, x: Tensor) -> ReadoutOutput:
        steps, batch = x.shape[0], x.shape[1]
        current = self.linear(x.reshape(steps * batch, -1)).reshape(steps, batch, self.out_features)
        if self.bias is not None:
            current = current + self.bias
        current = self.dt * current
        v = current.new_zeros(batch, self.out_features)
        vs = []
        for t in range(steps):
            v = integrator_step(current[t], v)
            vs.append(v)
        potential = torch.stack(vs)
        return ReadoutOutput(logits=potential[-1], potential=potential)


class SpikeCountReadout(nn.Module):
    """A LIF output layer read out by its spike counts over all steps (logits = counts).

    In the spirit of Gerum & Schilling's ``SumEnd`` (spikes summed at the end); useful for fully
    spiking networks, though the integrator readout trains more easily with cross-entropy.
    """

    def __init__(self, lif: LIFLayer) -> None:
        super().__init__()
        self.lif = lif

    def forward(self, x: Tensor) -> ReadoutOutput:
        out = self.lif(x)
        counts = torch.cumsum(out.spikes, dim=0)
        return ReadoutOutput(logits=counts[-1], potential=counts)


@dataclass(frozen=True)
class SpikingClassifierConfig:
    """Topology and neuron settings of a feed-forward spiking classifier.

    Attributes:
        sizes: layer widths, input first, classes last (e.g. ``(64, 128, 10)`` for 8×8 digits).
        neuron: hidden units: ``lif`` (Gerum & Schilling), ``snu`` or ``ssnu`` (Woźniak et al.).
        surrogate, beta, gamma: LIF surrogate derivative.
        readout: ``integrator`` (:class:`IntegratorReadout`) or ``spike_count``.
        dt, refractory, threshold, train_leak: LIF settings.
        decay: SNU decay ``l(τ)``.
    """

    sizes: tuple[int, ...]
    neuron: Literal["lif", "snu", "ssnu"] = "lif"
    surrogate: SurrogateName = "flat"
    beta: float = 10.0
    gamma: float = 1.0
    readout: Literal["integrator", "spike_count"] = "integrator"
    dt: float = 1.0
    refractory: int = 0
    threshold: float = 1.0
    train_leak: bool = True
    decay: float = 0.8

    def __post_init__(self) -> None:
        if len(self.sizes) < 2 or any(int(n) <= 0 for n in self.sizes):
            raise ValueError(f"sizes={self.sizes!r} is invalid: expected ≥ 2 positive layer widths")
        if self.neuron not in NEURONS:
            raise ValueError(f"neuron={self.neuron!r} is invalid: expected one of {', '.join(NEURONS)}")
        if self.surrogate not in SURROGATES:
            raise ValueError(
                f"surrogate={self.surrogate!r} is invalid: expected one of {', '.join(SURROGATES)}"
            )
        if self.readout not in READOUTS:
            raise ValueError(f"readout={self.readout!r} is invalid: expected one of {', '.join(READOUTS)}")


class SpikingClassifier(nn.Module):
    """Feed-forward spiking classifier: hidden LIF/SNU/sSNU layers and a readout.

    ``forward(x)`` takes an encoded input ``[T, B, in]`` and returns the readout's
    :class:`ReadoutOutput` (``.logits`` ``[B, classes]`` for cross-entropy).
    """

    def __init__(
        self,
        config: SpikingClassifierConfig,
        linear_factory: LinearFactory,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        factory = linear_factory
        sizes: Sequence[int] = config.sizes
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-2], sizes[1:-1]):
            layers.append(self._hidden(factory, n_in, n_out, generator))
        self.hidden = nn.ModuleList(layers)
        n_in, n_out = sizes[-2], sizes[-1]
        if config.readout == "integrator":
            self.readout: nn.Module = IntegratorReadout(factory(n_in, n_out, False), n_out, dt=config.dt)
        else:
            self.readout = SpikeCountReadout(self._lif(factory, n_in, n_out, generator))

    def _lif(
        self, factory: LinearFactory, n_in: int, n_out: int, generator: torch.Generator | None
    ) -> LIFLayer:
        c = self.config
        return LIFLayer(
            factory(n_in, n_out, False),
            n_out,
            dt=c.dt,
            train_leak=c.train_leak,
            threshold=c.threshold,
            surrogate=c.surrogate,
            beta=c.beta,
            gamma=c.gamma,
            refractory=c.refractory,
            generator=generator,
        )

    def _hidden(
        self, factory: LinearFactory, n_in: int, n_out: int, generator: torch.Generator | None
    ) -> nn.Module:
        c = self.config
        if c.neuron == "lif":
            return self._lif(factory, n_in, n_out, generator)
        return SNULayer(
            factory(n_in, n_out, False),
            n_out,
            soft=c.neuron == "ssnu",
            decay=c.decay,
            threshold=c.threshold,
        )

    def forward(self, x: Tensor) -> ReadoutOutput:
        h = x
        for layer in self.hidden:
            out = layer(h)
            h = out.spikes if isinstance(out, LIFOutput) else out.y
        return self.readout(h)

    def hidden_activity(self, x: Tensor) -> list[Tensor]:
        """Outputs (spikes, or sSNU rates) of every hidden layer, each ``[T, B, n]``."""
        acts = []
        h = x
        for layer in self.hidden:
            out = layer(h)
            h = out.spikes if isinstance(out, LIFOutput) else out.y
            acts.append(h)
        return acts


def build_spiking_classifier(
    config: SpikingClassifierConfig,
    flavour: str = "fp32",
    *,
    generator: torch.Generator | None = None,
    **options: object,
) -> SpikingClassifier:
    """Build a spiking classifier in a flavour (``fp32``, ``pcm``, ``aihwkit``: :mod:`pcmsim.networks`)."""
    return SpikingClassifier(config, make_linear_factory(flavour, **options), generator=generator)
