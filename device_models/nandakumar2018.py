"""``pcm-nandakumar2018``: pulse-level phase-change memory, the training device.

S. R. Nandakumar et al., "A phase-change memory model for neuromorphic computing",
J. Appl. Phys. 124, 152135 (2018): mushroom-type doped Ge2Sb2Te5 devices on a 90 nm prototype
chip. The constants are those of the public reimplementation YigitDemirag/srnn-pcm (``xbar.py``,
class ``XBar``), which follows the paper's Eqs. (1)-(4); see the project notes PCM-MODELS.md §1.

Per device (:class:`~device_models.state.DeviceState`): ``g_us`` the conductance as programmed,
``aux`` the pulse-history term P, ``t_prog_s`` the time of the last SET/RESET, ``nu`` the drift
exponent, ``pulse_count`` the SET and RESET pulses received (endurance).

SET pulse (one potentiation step)::

    P ← P·exp(−1/a)
    ΔG ~ N(μ, σ),  μ = m1·G + c1 + A1·P,  σ = max(0, m2·G + c2 + A2·P)
    G ← clip(G + ΔG, G_set_min, G_max)

RESET: ``G ~ N(0.1, 0.01)`` µS (floored at 0), ``P ← 1``, a fresh ν.

Drift: ``G(t) = G·((t − t_p)/T0)^(−ν)`` for ``t − t_p > T0`` and ``G(t) = G`` for
``t − t_p ≤ T0``. The paper's law is fitted from the first read at ``T0`` after programming;
applied before ``T0`` the formula would *raise* G (and diverge at ``t = t_p``, as it does in
``xbar.py``). We take the read at ``T0`` as the reference and apply no drift before it, so a
verify read right after a pulse sees the programmed G.

Read noise: Gaussian, ``σ = 0.03·G(t) + 0.13`` µS, independent per read. As in ``xbar.py``,
reads are clipped to ``[G_set_min, G_max]`` unless ``clip_reads=False``.

Update schemes: granularity ε = the mean SET step at the RESET conductance (0.8716 µS; ``xbar.py``
uses 0.75 µS); refresh by srnn-pcm's rule, ``max(G⁺, G⁻) > 6`` µS and ``|G⁺ − G⁻| < 1.5`` µS
(``xbar.py`` ``target_write``, method ``mixed-precision``: ``reset_thr = 6``, ``reset_thr/4``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .base import DeviceParams
from .checks import DeviceParameterError, as_mask, check_range, param
from .refresh import RefreshPolicy
from .sampling import ScratchBuffers
from .state import DeviceState
from .verify import PulseLevelDevice


@dataclass(frozen=True)
class NandakumarParams(DeviceParams):
    """Constants of ``pcm-nandakumar2018``; source: YigitDemirag/srnn-pcm ``xbar.py`` (XBar.__init__),
    after Nandakumar et al. J. Appl. Phys. 124, 152135 (2018)."""

    g_max_us: float = param(12.0, gt=0.0)  # G_max, µS; xbar.py Gmax=12 ("use 20 to replicate Fig 5")
    a_pulses: float = param(2.6, gt=0.0)  # decay constant of P per pulse, pulses; xbar.py a
    mu_slope: float = -0.084  # m1, dimensionless (µS/µS); xbar.py m1
    mu_offset_us: float = 0.880  # c1, µS; xbar.py c1
    mu_history_us: float = 1.40  # A1, µS; xbar.py A1
    sigma_slope: float = 0.091  # m2, dimensionless; xbar.py m2
    sigma_offset_us: float = 0.260  # c2, µS; xbar.py c2
    sigma_history_us: float = 2.15  # A2, µS; xbar.py A2
    g_set_min_us: float = 0.1  # lower clip of SET and reads, µS; xbar.py clamp(…, 0.1, Gmax)
    reset_mean_us: float = 0.1  # RESET conductance mean, µS; xbar.py G0
    reset_std_us: float = param(0.01, ge=0.0)  # RESET conductance std, µS; xbar.py G0*0.1
    t0_s: float = param(38.6, gt=0.0)  # T0, drift reference time after programming, s; xbar.py __main__ T0
    nu: float = param(0.04, ge=0.0)  # drift exponent ν (mean), dimensionless; xbar.py v
    nu_std: float = param(0.0, ge=0.0)  # device-to-device std of ν (drawn at init/RESET, floored at 0); ours, default 0
    read_noise_slope: float = param(0.03, ge=0.0)  # m3, dimensionless; xbar.py m3
    read_noise_offset_us: float = param(0.13, ge=0.0)  # c3, µS; xbar.py c3
    clip_reads: bool = True  # clip reads to [g_set_min_us, g_max_us] as xbar.py read() does
    program_tolerance_us: float = param(0.5, ge=0.0)  # program-and-verify acceptance half-window, µS; ours
    program_max_pulses: int = param(50, ge=1, integer=True)  # verify budget (with the first RESET), pulses; ours


class NandakumarDevice(PulseLevelDevice):
    """Pulse-level PCM of Nandakumar et al. (2018); see the module docstring for the equations."""

    name = "pcm-nandakumar2018"
    Params = NandakumarParams
    params: NandakumarParams

    def __init__(self, params: NandakumarParams | None = None, **overrides) -> None:
        super().__init__(params, **overrides)
        p = self.params
        self._p_decay = math.exp(-1.0 / p.a_pulses)
        # σ = m2·G + c2 + A2·P is linear in (G, P) on [0, G_max] × [0, 1]: if it is ≥ 0 at the four
        # corners it is ≥ 0 everywhere and the clamp (a full pass over the devices) can be skipped.
        corners = [p.sigma_offset_us + p.sigma_slope * g + p.sigma_history_us * q
                   for g in (0.0, p.g_max_us) for q in (0.0, 1.0)]
        self._sigma_may_be_negative = min(corners) < 0.0
        self._buf = ScratchBuffers()
        self._scalars: dict[tuple[str, torch.device], Tensor] = {}

    def validate(self) -> None:
        p = self.params
        check_range("g_set_min_us", p.g_set_min_us, 0.0, p.g_max_us, hi_open=True)
        check_range("reset_mean_us", p.reset_mean_us, 0.0, p.g_max_us)

    # ---- range -------------------------------------------------------------------------
    @property
    def g_max_us(self) -> float:
        return self.params.g_max_us

    @property
    def g_min_us(self) -> float:
        return self.params.reset_mean_us

    @property
    def read_clip_us(self) -> tuple[float, float] | None:
        """``[G_set_min, G_max]`` with ``clip_reads`` (xbar.py's read() clamps there), else None."""
        p = self.params
        return (p.g_set_min_us, p.g_max_us) if p.clip_reads else None

    # ---- life cycle -------------------------------------------------------------------
    def init_state(self, shape, *, device=None, generator=None, t_s: float = 0.0) -> DeviceState:
        state = DeviceState.empty(shape, device)
        self.reset(state, None, t_s, generator)
        state.pulse_count.zero_()  # a fresh device has seen no pulse
        return state

    def _draw_reset(self, n_shape: torch.Size, like: Tensor, generator) -> tuple[Tensor, Tensor | None]:
        p = self.params
        g = torch.randn(n_shape, generator=generator, device=like.device, dtype=torch.float32)
        g.mul_(p.reset_std_us).add_(p.reset_mean_us).clamp_(0.0, p.g_max_us)
        nu = None
        if p.nu_std > 0:
            nu = torch.randn(n_shape, generator=generator, device=like.device, dtype=torch.float32)
            nu.mul_(p.nu_std).add_(p.nu).clamp_(min=0.0)
        return g, nu

    def reset(self, state: DeviceState, mask: Tensor | None, t_s: float, generator) -> None:
        """RESET where ``mask`` (``None``: all devices): G ~ N(reset_mean, reset_std), P ← 1, new ν.

        A partial mask draws for the selected devices only (in row-major order) and writes them
        with masked scatters and fills: no index tensors.
        """
        mask = as_mask(mask, state)
        self._reset(state, mask, state.g_us.numel() if mask is None else int(torch.count_nonzero(mask)), t_s,
                    generator)

    def _reset(self, state: DeviceState, mask: Tensor | None, n: int, t_s: float, generator) -> None:
        """:meth:`reset` of the ``n`` devices where ``mask`` (a bool tensor of the state's shape, or None)."""
        p = self.params
        if n == state.g_us.numel():
            g, nu = self._draw_reset(state.shape, state.g_us, generator)
            state.g_us.copy_(g)
            state.aux.fill_(1.0)
            if nu is None:
                state.nu.fill_(p.nu)
            else:
                state.nu.copy_(nu)
            state.t_prog_s.fill_(t_s)
            state.pulse_count.add_(self._scalar("one", 1, state.pulse_count, torch.int32))
            return
        if n == 0:
            return
        assert mask is not None
        g, nu = self._draw_reset(torch.Size([n]), state.g_us, generator)
        state.g_us.masked_scatter_(mask, g)
        state.aux.masked_fill_(mask, 1.0)
        if nu is None:
            state.nu.masked_fill_(mask, p.nu)
        else:
            state.nu.masked_scatter_(mask, nu)
        state.t_prog_s.masked_fill_(mask, t_s)
        state.pulse_count.add_(mask)

    def _increment(self, g: Tensor, p_hist: Tensor, xi: Tensor, out: Tensor | None) -> Tensor:
        """``clip(G + μ + σ·ξ, G_set_min, G_max)`` for the already-decayed ``p_hist``, into ``out``
        (``None``: a new tensor; ``out`` may be ``g`` itself); returns it.

        Fused as ``out = (1+m1)·G + [c1 + A1·P + ξ·(c2 + m2·G + A2·P)]`` in six passes; for a large
        population the two intermediates live in scratch buffers (no allocation).
        """
        p = self.params
        sigma = torch.add(self._scalar("c2", p.sigma_offset_us, g), g, alpha=p.sigma_slope,
                          out=self._buf.out("tmp", g))
        sigma.add_(p_hist, alpha=p.sigma_history_us)
        if self._sigma_may_be_negative:
            sigma.clamp_(min=0.0)
        step = torch.add(self._scalar("c1", p.mu_offset_us, g), p_hist, alpha=p.mu_history_us,
                         out=self._buf.out("tmp2", g))
        step.addcmul_(xi, sigma)  # c1 + A1·P + σ·ξ
        return torch.add(step, g, alpha=1.0 + p.mu_slope, out=out).clamp_(p.g_set_min_us, p.g_max_us)

    def _scalar(self, name: str, value: float, like: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
        """A cached 0-d tensor on ``like``'s device: the operand of an op that would otherwise wrap a
        Python number on every call (which costs more than the op on a small population)."""
        key = (name, like.device)
        t = self._scalars.get(key)
        if t is None:
            t = torch.tensor(value, dtype=dtype, device=like.device)
            self._scalars[key] = t
        return t

    def set_pulse(self, state: DeviceState, mask: Tensor | None, t_s: float, generator) -> None:
        """One SET pulse where ``mask`` is true (``None``: every device), in place.

        All-true mask: one ``randn`` over the population and fused in-place arithmetic (no
        ``torch.where``). A dense partial mask: the same over all devices, then a select. A sparse
        mask (under 1/8 of the devices): gather, update, scatter (``randn`` of the selected only).
        """
        mask = as_mask(mask, state)
        # (count_nonzero: mask.sum() would convert to int64 first)
        self._set_pulse(state, mask, state.g_us.numel() if mask is None else int(torch.count_nonzero(mask)), t_s,
                        generator)

    def _set_pulse(self, state: DeviceState, mask: Tensor | None, n_sel: int, t_s: float, generator) -> None:
        """:meth:`set_pulse` of the ``n_sel`` devices where ``mask`` (a bool tensor of the state's shape,
        or None)."""
        g, ph = state.g_us, state.aux
        n_all = g.numel()
        if n_sel == 0:
            return
        if n_sel == n_all:
            ph.mul_(self._scalar("p_decay", self._p_decay, ph))
            self._increment(g, ph, self._buf.normal("xi", g, generator), g)
            state.t_prog_s.fill_(t_s)
            state.pulse_count.add_(self._scalar("one", 1, state.pulse_count, torch.int32))
            return
        assert mask is not None
        if n_sel * 8 >= n_all:
            ph_new = torch.mul(ph, self._scalar("p_decay", self._p_decay, ph), out=self._buf.out("ph", g))
            out = self._increment(g, ph_new, self._buf.normal("xi", g, generator), self._buf.out("out", g))
            torch.where(mask, out, g, out=g)
            torch.where(mask, ph_new, ph, out=ph)
            state.t_prog_s.masked_fill_(mask, t_s)
            state.pulse_count.add_(mask)
            return
        gs = g[mask]  # the selected devices in row-major order
        ps = ph[mask].mul_(self._scalar("p_decay", self._p_decay, ph))
        xi = torch.randn(gs.shape, generator=generator, device=gs.device, dtype=gs.dtype)
        g.masked_scatter_(mask, self._increment(gs, ps, xi, gs))
        ph.masked_scatter_(mask, ps)
        state.t_prog_s.masked_fill_(mask, t_s)
        state.pulse_count.add_(mask)

    def set_pulses(self, state: DeviceState, n_pulses: Tensor, t_s: float, generator) -> None:
        """``n_pulses[i]`` SET pulses on device i, one round per pulse.

        The devices that get pulses are gathered once, ordered by descending pulse count (a stable
        sort), so that the devices still active in round r are a prefix of that order: every round
        is the all-true fast path of :meth:`set_pulse` on a contiguous slice, and the result is
        scattered back at the end. Only the devices with at least one pulse are sorted (in mixed
        precision a few per cent of the array): ascending indices of those, stably sorted by
        descending count, are the same order as a stable sort of every device; with at most one
        pulse per device they need no sort at all.
        """
        n = n_pulses.to(device=state.device, dtype=torch.int32).reshape(-1)
        if n.numel() != state.g_us.numel():
            raise ValueError(f"n_pulses has {n.numel()} entries; the state has {state.g_us.numel()} devices")
        n_max = int(n.max()) if n.numel() else 0
        if n_max <= 0:
            return
        if int(n.min()) == n_max:  # the same count everywhere: full rounds on the state itself
            for _ in range(n_max):
                self.set_pulse(state, None, t_s, generator)
            return
        order = (n > 0).nonzero().squeeze(1)  # the devices that get pulses, ascending
        if n_max == 1:
            active = [n.numel(), order.numel()]
        else:
            n_sel = n[order]
            counts = torch.bincount(n_sel, minlength=n_max + 1)
            active = counts.flip(0).cumsum(0).flip(0).tolist()  # active[r] = #devices with n ≥ r (r ≥ 1)
            # descending stable order as an ascending sort of n_max − n (radix sort on the CPU: ~5x faster)
            order = order[torch.argsort(n_max - n_sel, stable=True)]
        flat = DeviceState(**{f: getattr(state, f).reshape(-1) for f in DeviceState.FIELDS})
        work = flat.index(order)
        for r in range(n_max):
            self.set_pulse(work.index(slice(0, active[r + 1])), None, t_s, generator)
        for f in DeviceState.FIELDS:
            getattr(flat, f).index_copy_(0, order, getattr(work, f))
            dst = getattr(state, f)
            if not dst.is_contiguous():
                dst.copy_(getattr(flat, f).view(state.shape))

    # ---- reading ----------------------------------------------------------------------
    def drifted(self, state: DeviceState, t_s: float) -> Tensor:
        """``G·max((t − t_p)/T0, 1)^(−ν)``: no drift before ``T0`` (see the module docstring)."""
        p = self.params
        x = torch.rsub(state.t_prog_s, t_s / p.t0_s, alpha=1.0 / p.t0_s)  # (t − t_p)/T0
        x.clamp_(min=1.0).pow_(state.nu)
        return torch.div(state.g_us, x, out=x)

    def read_noise_std(self, state: DeviceState, t_s: float, g_drift_us: Tensor | None = None) -> Tensor:
        """``σ = 0.03·G(t) + 0.13`` µS."""
        p = self.params
        g = self.drifted(state, t_s) if g_drift_us is None else g_drift_us
        return torch.add(self._scalar("c3", p.read_noise_offset_us, g), g, alpha=p.read_noise_slope)

    def read(self, state: DeviceState, t_s: float, generator=None, *, noise: bool = True) -> Tensor:
        g = self.drifted(state, t_s)
        return self._add_read_noise_(g, generator) if noise else g

    def verify_round(self, state: DeviceState, over: Tensor, n_over: int, under: Tensor, n_under: int, t_s: float,
                     generator) -> Tensor:
        """:meth:`DeviceModel.verify_round` without re-checking the masks or counting them again."""
        if n_over:
            self._reset(state, over, n_over, t_s, generator)
        if n_under:
            self._set_pulse(state, under, n_under, t_s, generator)
        return self.verify_read(state, t_s, generator)

    def verify_read(self, state: DeviceState, t_s: float, generator) -> Tensor:
        """:meth:`read` of devices all programmed at ``t_s``, without the drift computation.

        Drift starts ``T0`` after programming, so ``G(t_s) = G·1^(−ν) = G`` exactly. Taken where
        ``t_s/T0 < 2^20``: there the float32 ``(t_s − t_p)/T0`` of a device with ``t_p = t_s`` is far
        below 1 and :meth:`drifted` clamps it to exactly 1 (at larger times, :meth:`read`).
        """
        if not abs(t_s) < self.params.t0_s * 2.0**20:
            return self.read(state, t_s, generator)
        return self._add_read_noise_(state.g_us.clone(), generator)

    def _add_read_noise_(self, g: Tensor, generator) -> Tensor:
        """``g ← g + (0.03·g + 0.13)·ξ``, clipped to ``[G_set_min, G_max]`` (``clip_reads``), in place."""
        p = self.params
        xi = self._buf.normal("read_xi", g, generator)
        sigma = torch.add(self._scalar("c3", p.read_noise_offset_us, g), g, alpha=p.read_noise_slope,
                          out=self._buf.out("read_sigma", g))
        g.addcmul_(xi, sigma)
        if p.clip_reads:
            g.clamp_(p.g_set_min_us, p.g_max_us)
        return g

    # ---- programming ------------------------------------------------------------------
    def mean_set_increment_us(self, g_us: Tensor | float | None = None) -> float:
        """ε: mean of μ = m1·G + c1 + A1·P over ``g_us`` with P at its steady value for repeated
        pulses, P → 0 (P decays by exp(−1/a) each pulse and is restored only by RESET).

        Without ``g_us``: at the RESET conductance, ``c1 + m1·reset_mean`` = 0.8716 µS with the
        defaults. This μ falls to the 0.75 µS used as ε by ``xbar.py`` at G ≈ 1.55 µS; the first
        pulse after a RESET (P = exp(−1/a)) has μ ≈ 1.82 µS. The clip at G_max is not included.
        """
        p = self.params
        if g_us is None:
            g_mean = p.reset_mean_us
        else:
            g_mean = float(torch.as_tensor(g_us, dtype=torch.float64).mean())
            if not math.isfinite(g_mean):
                raise DeviceParameterError(f"mean_set_increment_us: g_us must be finite, got mean {g_mean}")
        return p.mu_offset_us + p.mu_slope * g_mean

    # ---- update schemes -------------------------------------------------------------------
    granularity_source = ("mean SET step at the RESET conductance, c1 + m1·G_reset (ours; srnn-pcm xbar.py's "
                          "mixed precision uses eps = 0.75 µS, the step at G ≈ 1.55 µS)")

    def refresh_policy(self) -> RefreshPolicy:
        """srnn-pcm's rule (``xbar.py``, ``target_write``, method ``mixed-precision``): refresh where
        ``G⁺ > 6`` or ``G⁻ > 6`` µS and ``|G⁺ − G⁻| < 6/4`` µS; absolute µS, also at G_max = 20 µS."""
        return RefreshPolicy.srnn_pcm()


@dataclass(frozen=True)
class Nandakumar20Params(NandakumarParams):
    """As :class:`NandakumarParams` with G_max = 20 µS, which reproduces the paper's 20-pulse
    programming curve (Fig. 5; ``xbar.py``: "Use 20 to replicate Fig 5")."""

    g_max_us: float = param(20.0, gt=0.0)  # µS; xbar.py comment on Gmax


class Nandakumar20Device(NandakumarDevice):
    """``pcm-nandakumar2018-20us``: pcm-nandakumar2018 with G_max = 20 µS (the paper's Fig. 5 curve)."""

    name = "pcm-nandakumar2018-20us"
    Params = Nandakumar20Params
