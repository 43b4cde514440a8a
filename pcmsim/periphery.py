"""The periphery of a crossbar tile: DAC, ADC, output noise, noise and bound management.

One analog matrix-vector product of a tile (the forward pass of aihwkit's ``InferenceRPUConfig``,
src/aihwkit/simulator/tiles/analog_mvm.py, read at commit 4545f11)::

    y = ADC( Ĝ·DAC(x/α) + read noise + σ_out·ξ ) · α

Normalised units (the contract between the crossbar and its periphery):

- inputs: the DAC sees ``x/α`` and represents values in ``[−inp_bound, inp_bound]``
  (``inp_bound = 1``: full-scale input voltage);
- weights: ``Ĝ = Σ_k c_k (G⁺_k − G⁻_k) / g_norm`` with ``g_norm = g_max · Σ_k c_k`` (µS/µS), so
  that ``|Ĝ| ≤ 1``. For one differential pair this is aihwkit's mapping of a weight to
  ``(G⁺ − G⁻)/g_max``, and a weight at full conductance times a full-scale input contributes 1;
- outputs: ``ŷ = Σ_j Ĝ_ij x̂_j`` in the same units; the ADC represents ``[−out_bound, out_bound]``
  (12 by default: the current of twelve full-scale devices), and ``σ_out`` is in these units
  (0.06 by default: 6 % of one full-scale device current).

The digital side turns ``ŷ`` back into weight units with ``α`` (noise management), the bound
management factor, and the crossbar's ``w_per_us · g_norm`` (see :mod:`pcmsim.crossbar`).

Quantisation follows aihwkit: a converter of ``b`` bits has the resolution
``res = 1/(2^b − 2)`` of its full range ``2·bound``, i.e. the step ``2·bound/(2^b − 2)`` and
``2^b − 1`` levels ``−L·step … L·step`` with ``L = 2^(b−1) − 1`` (7-bit DAC over ±1: step 1/63,
levels ±63; 9-bit ADC over ±12: step 24/510, levels ±255). Values are rounded to the nearest level
(half to even, ``torch.round``) and clipped at the outermost level.

The crossbar's analog product (:mod:`pcmsim.crossbar.product`) runs through these functions:
:func:`noise_management_scale`, :func:`dac` with α folded into the rounding, and
:func:`adc_in_units` on sums formed in ADC units (:func:`adc` is the same converter in normalised
units).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from .typedconfig import check, check_fields

_BITS = check(lambda v: 2 <= v <= 24, "an integer number of bits in [2, 24] or None (off)")
_BOUND = check(lambda v: v > 0, "a finite number > 0 or None (no bound)")


@dataclass(frozen=True)
class PeripheryConfig:
    """Converters, noise and input scaling of every tile of a crossbar.

    Defaults are aihwkit's ``IOParameters`` (``InferenceRPUConfig().forward``).

    Attributes:
        dac_bits: DAC resolution in bits (7: ``inp_res = 1/126``); ``None``: exact inputs.
        inp_bound: DAC full scale (normalised input units); inputs beyond it are clipped;
            ``None``: no input clipping (only without ``dac_bits``).
        adc_bits: ADC resolution in bits (9: ``out_res = 1/510``); ``None``: exact outputs.
        out_bound: ADC full scale (normalised output units, 12); ``None``: no clipping.
        out_noise: std of the additive Gaussian output noise σ_out (normalised units, 0.06).
        noise_management: scale each input vector by ``α = max|x|`` (per tile) before the DAC and
            multiply the output back (aihwkit ``NoiseManagementType.ABS_MAX``).
        bound_management: iterative bound management (aihwkit ``BoundManagementType.ITERATIVE``):
            where an output clips at the ADC, halve that input vector and read again, up to
            ``bm_max_halvings`` times.
        bm_max_halvings: the most halvings. aihwkit stops once the reduction exceeds
            ``max_bm_res / inp_res = 0.25 · 63 = 15.75``, i.e. after the reduction 16 = 2⁴: 4.
    """

    dac_bits: int | None = field(default=7, metadata=_BITS)
    inp_bound: float | None = field(default=1.0, metadata=_BOUND)
    adc_bits: int | None = field(default=9, metadata=_BITS)
    out_bound: float | None = field(default=12.0, metadata=_BOUND)
    out_noise: float = field(default=0.06, metadata=check(lambda v: v >= 0, "a finite number ≥ 0"))
    noise_management: bool = True
    bound_management: bool = True
    bm_max_halvings: int = field(default=4, metadata=check(lambda v: v >= 0, "an integer ≥ 0"))

    def __post_init__(self) -> None:
        check_fields(self)
        if self.dac_bits is not None and self.inp_bound is None:
            raise ValueError(
                f"dac_bits={self.dac_bits} needs a finite inp_bound (the DAC full scale); got None"
            )
        if self.adc_bits is not None and self.out_bound is None:
            raise ValueError(
                f"adc_bits={self.adc_bits} needs a finite out_bound (the ADC full scale); got None"
            )

    @classmethod
    def ideal(cls) -> PeripheryConfig:
        """Exact converters, no output noise, no clipping, no noise or bound management."""
        return cls(
            dac_bits=None,
            inp_bound=None,
            adc_bits=None,
            out_bound=None,
            out_noise=0.0,
            noise_management=False,
            bound_management=False,
        )

    @property
    def inp_res(self) -> float | None:
        """DAC resolution as a fraction of the full range (aihwkit ``inp_res``), or None."""
        return None if self.dac_bits is None else 1.0 / (2**self.dac_bits - 2)

    @property
    def out_res(self) -> float | None:
        """ADC resolution as a fraction of the full range (aihwkit ``out_res``), or None."""
        return None if self.adc_bits is None else 1.0 / (2**self.adc_bits - 2)

    @property
    def dac_step(self) -> float | None:
        """Distance between two DAC levels (normalised input units), or None."""
        if self.dac_bits is None or self.inp_bound is None:
            return None
        return 2.0 * self.inp_bound / (2**self.dac_bits - 2)

    @property
    def adc_step(self) -> float | None:
        """Distance between two ADC levels (normalised output units), or None."""
        if self.adc_bits is None or self.out_bound is None:
            return None
        return 2.0 * self.out_bound / (2**self.adc_bits - 2)

    @property
    def adc_unit(self) -> float:
        """The unit in which a crossbar forms its analog sums: one ADC step (normalised output
        units), or 1 (normalised units) without ADC bits; the ADC is then a rounding."""
        step = self.adc_step
        return step if step is not None else 1.0

    @property
    def adc_limit(self) -> float | None:
        """The outermost ADC level in ADC units (:attr:`adc_unit`): ``2^(b−1) − 1``, or
        ``out_bound`` without ADC bits; None: unbounded output."""
        if self.adc_bits is not None:
            return float(2 ** (self.adc_bits - 1) - 1)
        return self.out_bound

    @property
    def clips_output(self) -> bool:
        return self.out_bound is not None

    @property
    def uses_bound_management(self) -> bool:
        return self.bound_management and self.out_bound is not None and self.bm_max_halvings > 0


def quantize(
    x: Tensor,
    bits: int | None,
    bound: float | None,
    *,
    scale: Tensor | None = None,
    find_clipped: bool = True,
    unit_bounded: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Round ``x / scale`` to the levels of a ``bits``-bit converter over ``±bound`` and clip.

    Returns ``(values, clipped)`` where ``clipped`` marks entries beyond the outermost level (after
    rounding, as aihwkit tests it), or is None with ``find_clipped=False`` (the pass that forms
    it is skipped). ``bits=None``: no rounding (clipping at ``bound`` only); ``bound=None``: no
    clipping (then ``bits`` must be None).

    ``scale`` (broadcast against ``x``; None: ``x`` is already scaled) is folded into the
    rounding as one multiplication by ``1 / (scale · step)``. ``unit_bounded``: the caller knows
    ``|x / scale| ≤ 1`` (``scale`` is the noise-management α of ``x`` or more), so nothing clips
    at a ``bound ≥ 1`` and the clamp is skipped. The input ``x`` is never changed.
    """
    if bits is not None and bound is None:
        raise ValueError(f"a {bits}-bit converter needs a finite bound; got None")
    can_clip = bound is not None and not (unit_bounded and bound >= 1.0)
    if bits is None:
        if bound is None:
            v = x if scale is None else x / scale
            return v, (torch.zeros_like(x, dtype=torch.bool) if find_clipped else None)
        clipped = None
        if scale is None:
            if find_clipped:
                clipped = x.abs() > bound
            return x.clamp(-bound, bound), clipped
        v = x / scale
        if find_clipped:
            clipped = v.abs() > bound
        return (v.clamp_(-bound, bound) if can_clip else v), clipped
    assert bound is not None
    step = 2.0 * bound / (2**bits - 2)
    top = float(2 ** (bits - 1) - 1)
    level = torch.round(x / step) if scale is None else (x * (scale * step).reciprocal_()).round_()
    clipped = level.abs() > top if find_clipped else None
    if can_clip:
        level.clamp_(-top, top)
    return level.mul_(step), clipped


def dac(
    x: Tensor, cfg: PeripheryConfig, scale: Tensor | None = None, *, find_clipped: bool = True
) -> tuple[Tensor, Tensor | None]:
    """The input converter: ``x / scale`` to DAC levels; returns (values, clipped).

    ``scale``: None where ``x`` is already divided by α; else α per input vector
    (:func:`noise_management_scale`, times a bound-management factor ≥ 1), divided out here as
    part of the conversion. With noise management on, ``|x / scale| ≤ 1``: a DAC of full scale
    ``inp_bound ≥ 1`` then clips nothing and is not tested for it. ``find_clipped=False``: no
    ``clipped`` mask (None).
    """
    return quantize(
        x,
        cfg.dac_bits,
        cfg.inp_bound,
        scale=scale,
        find_clipped=find_clipped,
        unit_bounded=scale is not None and cfg.noise_management,
    )


def adc_in_units(y: Tensor, cfg: PeripheryConfig) -> tuple[Tensor, Tensor | None]:
    """The output converter on analog sums in ADC units (``y / cfg.adc_unit``), in place.

    Rounds to the nearest level (with ADC bits) and clips at the outermost level
    (:attr:`PeripheryConfig.adc_limit`). Returns ``(y, clipped)``; ``clipped`` is None where
    nothing clipped (decided by one min/max reduction, no mask formed) or the output is unbounded.
    """
    if cfg.adc_bits is not None:
        y.round_()
    lim = cfg.adc_limit
    if lim is None:
        return y, None
    lo, hi = torch.aminmax(y)
    if not max(-float(lo), float(hi)) > lim:  # the common case: nothing clips
        return y, None
    clipped = y.abs() > lim
    return y.clamp_(-lim, lim), clipped


def adc(y: Tensor, cfg: PeripheryConfig) -> tuple[Tensor, Tensor]:
    """The output converter: analog sums (normalised units) to ADC levels; returns (values, clipped)."""
    unit = cfg.adc_unit
    v, clipped = adc_in_units(y / unit, cfg)
    return v.mul_(unit), (clipped if clipped is not None else torch.zeros_like(y, dtype=torch.bool))


def noise_management_scale(x: Tensor, cfg: PeripheryConfig) -> Tensor:
    """α per input vector (over the last dim, kept as size 1): ``max|x|`` (1 where x = 0), or 1 if off."""
    if not cfg.noise_management:
        return torch.ones(x.shape[:-1] + (1,), dtype=x.dtype, device=x.device)
    alpha = x.abs().amax(dim=-1, keepdim=True)
    return torch.where(alpha > 0, alpha, 1.0)


@dataclass
class PeripheryStats:
    """Running counts of one crossbar's periphery.

    Counts known on the host are Python ints; counts that depend on the data are 0-dim int64
    tensors on the crossbar's device (accumulated without synchronising with it).

    Attributes:
        mvm_calls: analog matrix-vector calls (each over a whole batch).
        input_vectors: input vectors per tile seen by the DACs (batch rows × input tiles).
        outputs: ADC conversions of the final reads (batch rows × input tiles × outputs); counted
            only when the output is bounded.
        adc_clipped: final ADC conversions that still clipped (after bound management).
        dac_clipped: DAC inputs that clipped (only possible without noise management).
        bm_rereads: tile reads repeated by bound management (all rounds).
        dac_nonzero: DAC conversions with a nonzero level (all tile reads, bound-management
            rereads included), counted once per tile along the outputs, since every tile has its
            own DACs (:mod:`pcmsim.crossbar.tiles`). A zero input (a silent spike) drives no DAC
            pulse and no row current: the energy estimate (:mod:`pcmsim.cost`) charges only these.
        array_gx_us: ``Σ_reads Σ_rows |x̂_j| · G_row,j`` (µS × normalised input): the DAC level
            ``|x̂_j| ≤ 1`` of every row times the total noise-free conductance ``G_row,j`` of the
            devices on that row (all pairs, both signs, all columns), summed over every tile read.
            With pulse-width-modulated inputs at ``V_read`` for up to ``t_read`` (as IBM's HERMES
            chip drives its rows), the energy the array dissipates is
            ``V_read² · t_read · array_gx_us · 1e-6`` J. A float64 tensor.
    """

    mvm_calls: int
    input_vectors: int
    outputs: int
    adc_clipped: Tensor
    dac_clipped: Tensor
    bm_rereads: Tensor
    dac_nonzero: Tensor
    array_gx_us: Tensor

    FIELDS = ("mvm_calls", "input_vectors", "outputs", "adc_clipped", "dac_clipped", "bm_rereads",
              "dac_nonzero", "array_gx_us")
    HOST_FIELDS = ("mvm_calls", "input_vectors", "outputs")
    FLOAT_FIELDS = ("array_gx_us",)

    @classmethod
    def _dtype(cls, f: str) -> torch.dtype:
        return torch.float64 if f in cls.FLOAT_FIELDS else torch.int64

    @classmethod
    def zeros(cls, device: torch.device | str | None = None) -> PeripheryStats:
        dev = {
            f: torch.zeros((), dtype=cls._dtype(f), device=device)
            for f in cls.FIELDS
            if f not in cls.HOST_FIELDS
        }
        return cls(mvm_calls=0, input_vectors=0, outputs=0, **dev)

    def as_dict(self) -> dict[str, int | float]:
        """The counts as Python ints (``array_gx_us``: a float; synchronises with the device)."""
        return {f: (float if f in self.FLOAT_FIELDS else int)(getattr(self, f)) for f in self.FIELDS}

    def state_dict(self) -> dict[str, Tensor]:
        return {f: torch.as_tensor(getattr(self, f), dtype=self._dtype(f)) for f in self.FIELDS}

    def load_state_dict(self, d: dict[str, Tensor]) -> None:
        for f in self.FIELDS:
            if f not in d:
                continue
            if f in self.HOST_FIELDS:
                setattr(self, f, int(d[f]))
            else:
                getattr(self, f).copy_(d[f])

    def reset(self) -> None:
        for f in self.FIELDS:
            if f in self.HOST_FIELDS:
                setattr(self, f, 0)
            else:
                getattr(self, f).zero_()

    def to(self, device: torch.device | str) -> PeripheryStats:
        return PeripheryStats(
            **{
                f: getattr(self, f) if f in self.HOST_FIELDS else getattr(self, f).to(device)
                for f in self.FIELDS
            }
        )
