"""Hardware cost profiles: every constant the energy, latency and area estimate uses, with units
and a source.

A profile is a frozen dataclass loaded with :func:`pcmsim.typedconfig.load` from a JSON object of
exactly its fields (every field required: a missing, unknown, mistyped, negative or zero constant
is refused with one line naming it). Named profiles live in :data:`PROFILES`;
``--cost-profile NAME|FILE`` takes a name or a JSON file (:func:`get_profile`).

Sources of :data:`DEFAULT_PROFILE` (``pcm-hermes-45nm``), field by field:

- ``v_read_v = 0.2`` V, ``t_read_s = 100 ns``: *assumed*. PCM is read well below its threshold
  switching voltage (≈1 V), typically at 0.1–0.3 V (Le Gallo & Sebastian, "An overview of
  phase-change memory device physics", J. Phys. D 53, 213002 (2020)); the integration window is
  of the order of the 8-bit pulse-width-modulated MVM of IBM's HERMES chip (Le Gallo et al., Nat.
  Electron. 6, 680 (2023)). Neither value was re-read from the papers in this session.
- ``e_set_j = 4.5 pJ``, ``t_set_s = 50 ns``: a SET pulse of 90 µA for 50 ns (the partial-SET
  pulses of Nandakumar et al., J. Appl. Phys. 124, 152135 (2018), recalled, not re-verified)
  across an *assumed* 1.0 V cell voltage: E = I·V·t = 90 µA · 1 V · 50 ns.
- ``e_reset_j = 30 pJ``, ``t_reset_s = 50 ns``: *assumed*: a RESET of ≈0.4 mA at ≈1.5 V for
  50 ns, the order of magnitude of mushroom-cell RESET currents (hundreds of µA) reviewed by Le
  Gallo & Sebastian (2020).
- ``adc_fom_j_per_step = 10 fJ``: *assumed*: a Walden figure of merit E/(2^ENOB) inside the
  envelope of Murmann's ADC survey (1997–2023: the best designs reach ≈1 fJ/conv-step, medium-
  speed designs 5–50 fJ/conv-step); the ENOB is taken as the nominal bits (optimistic).
  ``adc_time_s = 50 ns``: *assumed* conversion time (all columns of a tile convert in parallel).
- ``dac_fom_j_per_step = 2 fJ``: *assumed*: a DAC (pulse-width generator and row driver) charged
  like the ADC, E = FoM · 2^bits per nonzero conversion; no published figure was found.
- ``e_fp32_mult_j = 3.7 pJ``, ``e_fp32_add_j = 0.9 pJ``, ``e_sram_64b_j = 10 pJ`` (8 KB SRAM,
  64-bit read), ``e_dram_64b_j = 1.3 nJ`` (the low end of 1.3–2.6 nJ per 64-bit DRAM access, so
  the digital baseline is not overstated): Horowitz, "Computing's energy problem (and what we can
  do about it)", ISSCC 2014, 45 nm at 0.9 V (``node_nm = 45``; not scaled).
- ``cpu_j_per_flop = 46 pJ``, ``cpu_flops_per_s = 5.9 TFLOP/s``: Intel Xeon Platinum 8380 (40
  cores, 2.3 GHz base, two AVX-512 FMA units: 64 FP32 FLOP/cycle/core → 5.9 TFLOP/s; 270 W TDP):
  270 W / 5.9 TFLOP/s. Peak throughput at TDP: a lower bound on energy per FLOP.
- ``gpu_j_per_flop = 10.4 pJ``, ``gpu_flops_per_s = 67 TFLOP/s``: NVIDIA H100 SXM datasheet
  (67 TFLOP/s FP32 without tensor cores, 700 W): 700 W / 67 TFLOP/s, same caveat.
- ``host_flops_per_s``: the throughput of the digital side of the PCM chip (backward pass,
  optimiser), for latency only: the GPU's (the chip's host in the loop).
- ``device_area_um2 = 0.405 µm²``: *assumed*: 50 F² per device (a 1T1R PCM cell with its access
  transistor) at F = 90 nm, the node of the PCM prototype chip of Nandakumar et al.
- ``column_periphery_um2 = 500 µm²`` (ADC and integrator per column) and ``row_periphery_um2 =
  50 µm²`` (PWM DAC and driver per row): *assumed*, no published breakdown was found.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..typedconfig import ConfigError, load, positive

_P = positive("a finite number > 0")


@dataclass(frozen=True)
class CostProfile:
    """The constants of an energy, latency and area estimate (SI units; sources: module docstring).

    Attributes:
        name: the profile's name.
        node_nm: CMOS node of the digital energies, nm.
        v_read_v: read voltage of a full-scale input, V.
        t_read_s: integration time of one MVM (full-scale pulse width), s.
        e_set_j, t_set_s: energy and duration of one SET pulse on one device, J and s.
        e_reset_j, t_reset_s: energy and duration of one RESET pulse on one device, J and s.
        adc_fom_j_per_step: ADC Walden figure of merit, J per conversion step (E = FoM · 2^bits).
        adc_time_s: one ADC conversion, s.
        dac_fom_j_per_step: DAC energy per level, J (E = FoM · 2^bits per nonzero conversion).
        e_fp32_mult_j, e_fp32_add_j: one FP32 multiplication and addition, J.
        e_sram_64b_j: one 64-bit SRAM read, J.
        e_dram_64b_j: one 64-bit DRAM access, J.
        cpu_j_per_flop, cpu_flops_per_s: CPU baseline energy per FLOP (J) and throughput (FLOP/s).
        gpu_j_per_flop, gpu_flops_per_s: GPU baseline energy per FLOP (J) and throughput (FLOP/s).
        host_flops_per_s: throughput of the PCM chip's digital side (latency only), FLOP/s.
        device_area_um2: area of one PCM device with its access transistor, µm².
        column_periphery_um2: periphery per tile column (ADC, integrator), µm².
        row_periphery_um2: periphery per tile row (DAC, driver), µm².
    """

    name: str
    node_nm: float = field(metadata=_P)
    v_read_v: float = field(metadata=_P)
    t_read_s: float = field(metadata=_P)
    e_set_j: float = field(metadata=_P)
    t_set_s: float = field(metadata=_P)
    e_reset_j: float = field(metadata=_P)
    t_reset_s: float = field(metadata=_P)
    adc_fom_j_per_step: float = field(metadata=_P)
    adc_time_s: float = field(metadata=_P)
    dac_fom_j_per_step: float = field(metadata=_P)
    e_fp32_mult_j: float = field(metadata=_P)
    e_fp32_add_j: float = field(metadata=_P)
    e_sram_64b_j: float = field(metadata=_P)
    e_dram_64b_j: float = field(metadata=_P)
    cpu_j_per_flop: float = field(metadata=_P)
    cpu_flops_per_s: float = field(metadata=_P)
    gpu_j_per_flop: float = field(metadata=_P)
    gpu_flops_per_s: float = field(metadata=_P)
    host_flops_per_s: float = field(metadata=_P)
    device_area_um2: float = field(metadata=_P)
    column_periphery_um2: float = field(metadata=_P)
    row_periphery_um2: float = field(metadata=_P)

    @property
    def e_flop_j(self) -> float:
        """One FP32 FLOP of the chip's digital side: half a multiply-accumulate, J."""
        return 0.5 * (self.e_fp32_mult_j + self.e_fp32_add_j)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


DEFAULT_PROFILE = CostProfile(
    name="pcm-hermes-45nm",
    node_nm=45,  # Horowitz ISSCC 2014 numbers, not scaled
    v_read_v=0.2,  # V, assumed (0.1–0.3 V PCM read range, Le Gallo & Sebastian 2020)
    t_read_s=100e-9,  # s, assumed (order of HERMES' 8-bit PWM MVM, Le Gallo et al. 2023)
    e_set_j=4.5e-12,  # J: 90 µA · 1 V (assumed) · 50 ns (Nandakumar et al. 2018)
    t_set_s=50e-9,  # s: Nandakumar et al. 2018
    e_reset_j=30e-12,  # J, assumed: ≈0.4 mA · 1.5 V · 50 ns
    t_reset_s=50e-9,  # s, assumed
    adc_fom_j_per_step=10e-15,  # J/conv-step, assumed inside Murmann's ADC survey envelope
    adc_time_s=50e-9,  # s, assumed
    dac_fom_j_per_step=2e-15,  # J/level, assumed
    e_fp32_mult_j=3.7e-12,  # J, Horowitz ISSCC 2014, 45 nm
    e_fp32_add_j=0.9e-12,  # J, Horowitz ISSCC 2014, 45 nm
    e_sram_64b_j=10e-12,  # J, 8 KB SRAM 64-bit read, Horowitz ISSCC 2014
    e_dram_64b_j=1.3e-9,  # J, 64-bit DRAM access (low end of 1.3–2.6 nJ), Horowitz ISSCC 2014
    cpu_j_per_flop=46e-12,  # J: Xeon Platinum 8380, 270 W / 5.9 TFLOP/s FP32 peak
    cpu_flops_per_s=5.9e12,  # FLOP/s: 40 cores · 2.3 GHz · 64 FP32 FLOP/cycle
    gpu_j_per_flop=10.4e-12,  # J: H100 SXM, 700 W / 67 TFLOP/s FP32
    gpu_flops_per_s=67e12,  # FLOP/s: H100 SXM datasheet, FP32 (no tensor cores)
    host_flops_per_s=67e12,  # FLOP/s: the host in the loop taken as the GPU above
    device_area_um2=0.405,  # µm², assumed 50 F² at F = 90 nm
    column_periphery_um2=500.0,  # µm², assumed
    row_periphery_um2=50.0,  # µm², assumed
)

PROFILES: dict[str, CostProfile] = {DEFAULT_PROFILE.name: DEFAULT_PROFILE}


def available_profiles() -> list[str]:
    return sorted(PROFILES)


def load_profile(data: Any, *, source: str = "cost profile") -> CostProfile:
    """A profile from a JSON object of all its fields (one-line :class:`ConfigError` otherwise)."""
    return load(CostProfile, data, source=source)


def get_profile(name_or_path: str | None) -> CostProfile:
    """A registered profile by name (None: the default), or one loaded from a JSON file."""
    if name_or_path is None:
        return DEFAULT_PROFILE
    if name_or_path in PROFILES:
        return PROFILES[name_or_path]
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(
            f"cost profile {name_or_path!r} is neither a registered name ({', '.join(available_profiles())}) "
            "nor a file"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({type(exc).__name__}: {exc})") from None
    return load_profile(data, source=str(path))
