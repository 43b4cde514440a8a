"""Hardware cost profiles: every constant the energy, latency and area estimate uses, with units
and a source.

A profile is a frozen dataclass loaded with :func:`pcmsim.typedconfig.load` from a JSON object of
exactly its fields (every field required: a missing, unknown, mistyped, negative or zero constant
is refused with one line naming it). Every constant carries its source: the ``sources`` object
maps each constant's name to a non-empty string (a constant without one, or a source for no
constant, is refused too). Named profiles live in :data:`PROFILES`; ``--cost-profile NAME|FILE``
takes a name or a JSON file (:func:`get_profile`).

Each source string says how the number was obtained: *read* (in the named source, or in the named
transcription of it, with this project's search tools), *derived* (computed from read numbers, the
arithmetic given), *calibrated* (fitted to a measured chip, :mod:`pcmsim.cost.calibration`) or *our
assumption* (no source found; the reasoning and a plausible span are given). The spans feed the
sensitivity table of ``bench/energy_table.py`` (:data:`ASSUMPTION_SPANS`).

Three profiles are registered:

- ``pcm-hermes-45nm`` (:data:`DEFAULT_PROFILE`): the training chip: analog cores like IBM's
  HERMES-Core (14-nm CMOS, Khaddam-Aljameh et al., IEEE JSSC 2022) as used in its 64-core chip
  (Le Gallo et al., Nat. Electron. 6, 680 (2023)), programmed with the PCM cell of NVSim's
  ``sample_PCRAM.cell`` through current-limited write drivers, and a digital side (BPTT, optimiser,
  neurons) priced by the one digital cost model (:mod:`pcmsim.cost.digital`) at 45 nm, the node of
  Horowitz's energies, not scaled (no scaling source was read);
- ``hermes-core`` and ``legallo-64core``: the same cores as the two measured chips, for the
  calibration (:mod:`pcmsim.cost.calibration`); the 64-core chip moves every MVM's inputs and
  outputs over its on-chip network, HERMES-Core was measured alone.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..typedconfig import ConfigError, load, non_negative, positive

_P = positive("a finite number > 0")
_NN = non_negative("a finite number ≥ 0")
_FRACTION = {"check": lambda v: 0 < v <= 1, "expected": "a fraction in (0, 1]"}


@dataclass(frozen=True)
class CostProfile:
    """The constants of an energy, latency and area estimate (SI units; sources: ``sources``).

    Attributes:
        name: the profile's name.
        node_nm: CMOS node of the digital energies, nm.
        v_read_v: read voltage of a full-scale input, V.
        t_read_s: integration time of one MVM (full-scale pulse width), s.
        adc_fom_j_per_step: ADC Walden figure of merit, J per conversion step (E = FoM · 2^bits).
        adc_time_s: one ADC conversion after the integration, s.
        dac_fom_j_per_step: DAC energy per level, J (E = FoM · 2^bits per nonzero conversion).
        column_overhead_j: energy per column and read beyond its ADC conversion (local digital
            unit, clocking, control, leakage during the read), J.
        i_set_a, t_set_s: current and duration of one SET pulse, A and s.
        i_reset_a, t_reset_s: current and duration of one RESET pulse, A and s.
        v_write_v: the write drivers' supply rail, V (a pulse draws ``I · V_write · t`` from it).
        write_driver_efficiency: the efficiency of the charge pump that makes the write rail
            (the supply delivers ``I · V_write · t / η``).
        write_current_budget_a: the current the write drivers of one tile deliver at once, A (sets
            how many devices one programming step pulses).
        e_fp32_mult_j, e_fp32_add_j: one FP32 multiplication and addition, J.
        e_int32_add_j: one 32-bit integer addition (partial sums across tiles), J.
        e_sram_64b_j: one 64-bit access of an 8-KB SRAM, J (larger arrays: √size, see
            :mod:`pcmsim.cost.digital`).
        e_dram_64b_j: one 64-bit DRAM access, J.
        sram_bytes: on-chip SRAM of every digital processor compared (the chip's digital side and
            the baselines alike), bytes.
        digital_flops_per_s: throughput of the PCM chip's digital side, FLOP/s.
        cpu_flops_per_s, gpu_flops_per_s: throughput of the CPU and GPU baselines, FLOP/s.
        e_transfer_j_per_bit: moving one bit between the analog tiles and the digital side, J
            (0: not charged).
        snn_j_per_synop: the event-driven SNN accelerator's energy per synaptic operation, J.
        device_area_um2: area of one PCM device with its access transistor, µm².
        column_periphery_um2: periphery per tile column (ADC, integrator, read-out), µm².
        row_periphery_um2: periphery per tile row (DAC, driver), µm².
        sources: the source of every constant above, by field name (every one required).
    """

    name: str
    node_nm: float = field(metadata=_P)
    v_read_v: float = field(metadata=_P)
    t_read_s: float = field(metadata=_P)
    adc_fom_j_per_step: float = field(metadata=_P)
    adc_time_s: float = field(metadata=_P)
    dac_fom_j_per_step: float = field(metadata=_P)
    column_overhead_j: float = field(metadata=_NN)
    i_set_a: float = field(metadata=_P)
    t_set_s: float = field(metadata=_P)
    i_reset_a: float = field(metadata=_P)
    t_reset_s: float = field(metadata=_P)
    v_write_v: float = field(metadata=_P)
    write_driver_efficiency: float = field(metadata=_FRACTION)
    write_current_budget_a: float = field(metadata=_P)
    e_fp32_mult_j: float = field(metadata=_P)
    e_fp32_add_j: float = field(metadata=_P)
    e_int32_add_j: float = field(metadata=_P)
    e_sram_64b_j: float = field(metadata=_P)
    e_dram_64b_j: float = field(metadata=_P)
    sram_bytes: float = field(metadata=_NN)
    digital_flops_per_s: float = field(metadata=_P)
    cpu_flops_per_s: float = field(metadata=_P)
    gpu_flops_per_s: float = field(metadata=_P)
    e_transfer_j_per_bit: float = field(metadata=_NN)
    snn_j_per_synop: float = field(metadata=_P)
    device_area_um2: float = field(metadata=_P)
    column_periphery_um2: float = field(metadata=_P)
    row_periphery_um2: float = field(metadata=_P)
    sources: dict[str, str]

    @classmethod
    def constants(cls) -> tuple[str, ...]:
        """The names of the numeric constants (every field but ``name`` and ``sources``)."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in ("name", "sources"))

    def validate(self, source: str, path: str) -> None:
        """Every constant has a non-empty source string, and every source names a constant."""
        names = self.constants()
        where = f"{path}." if path else ""
        for k in names:
            text = self.sources.get(k)
            if not isinstance(text, str) or not text.strip():
                raise ConfigError(f"{source}: field {where + 'sources.' + k!r} is missing or empty: every constant "
                                  "needs its source")
        extra = sorted(set(self.sources) - set(names))
        if extra:
            raise ConfigError(f"{source}: field {where + 'sources.' + extra[0]!r} names no constant of the profile")

    @property
    def e_flop_j(self) -> float:
        """One FP32 FLOP of the digital cost model: half a multiply-accumulate, J."""
        return 0.5 * (self.e_fp32_mult_j + self.e_fp32_add_j)

    @property
    def e_set_cell_j(self) -> float:
        """What one SET pulse draws from the write rail, ``I_SET · V_write · t_SET``, J."""
        return self.i_set_a * self.v_write_v * self.t_set_s

    @property
    def e_reset_cell_j(self) -> float:
        """What one RESET pulse draws from the write rail, ``I_RESET · V_write · t_RESET``, J."""
        return self.i_reset_a * self.v_write_v * self.t_reset_s

    @property
    def e_set_j(self) -> float:
        """One SET pulse from the supply (through the charge pump), J."""
        return self.e_set_cell_j / self.write_driver_efficiency

    @property
    def e_reset_j(self) -> float:
        """One RESET pulse from the supply (through the charge pump), J."""
        return self.e_reset_cell_j / self.write_driver_efficiency

    @property
    def read_s(self) -> float:
        """One tile read: integration and conversion, s."""
        return self.t_read_s + self.adc_time_s

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_HERMES = ("Khaddam-Aljameh et al., 'HERMES-Core: a 1.59-TOPS/mm2 PCM on 14-nm CMOS in-memory compute core "
           "using 300-ps/LSB linearized CCO-based ADCs', IEEE JSSC 2022, abstract (read: 256x256 core, 256 CCO-based "
           "ADCs, local digital unit for affine scaling and ReLU, 1 GHz clock, 1.59 TOPS/mm2, 10.5 TOPS/W measured)")
_LEGALLO = ("Le Gallo et al., 'A 64-core mixed-signal in-memory compute chip based on phase-change memory for "
            "deep neural network inference', Nat. Electron. 6, 680 (2023), abstract (read: 64 cores of 256x256, "
            "14 nm, 63.1 TOPS at 9.76 TOPS/W for 8-bit input/output MVMs in one-phase mode)")
_MVM = f"one core MVM = 2*256^2*64 ops / 63.1 TOPS = 132.9 ns ({_LEGALLO})"
_NVSIM = ("NVSim (SEAL-UCSB/NVSim, sample_PCRAM.cell, read): the 90-nm PCM cell of Lee et al., 'Architecting phase "
          "change memory as a scalable DRAM alternative', ISCA 2009")
_HOROWITZ = ("Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014, 45 nm, 0.9 V; read in "
             "two transcriptions of his energy table: Table 3 of PMC8934428 (Front. Neurol.) and the gist "
             "V0XNIHILI/2b6fa61edd4c06d9ffce5551065124c1 (FP32 add 0.9 pJ, mult 3.7 pJ; int32 add 0.1 pJ; 64-bit "
             "cache access 10/20/100 pJ at 8 KB/32 KB/1 MB; DRAM 1.3-2.6 nJ)")
_CAL = "calibrated (pcmsim.cost.calibration.calibrate_column_overhead_j)"

SOURCES: dict[str, str] = {
    "node_nm": f"the node of every digital energy: {_HOROWITZ}; not scaled (no scaling source was read)",
    "v_read_v": ("our assumption: PCM is read well below its ~1 V threshold switching, at a few tenths of a volt; "
                 "no published read voltage of the HERMES chips was found (span 0.1-0.3 V)"),
    "t_read_s": (f"derived: an 8-bit input as sign and 7-bit pulse width at the 1 GHz clock = 2^7 ns = 128 ns "
                 f"({_HERMES}); consistent with {_MVM}"),
    "adc_fom_j_per_step": ("read: Murmann, 'ADC Performance Survey 1997-2025', github.com/bmurmann/ADC-survey, "
                           "xls/ADCsurvey_latest.xlsx (rev. 2025-06-09), ISSCC + VLSI sheets: median FOMW_hf of the 22 "
                           "Nyquist ADCs of 2015-2025 with ENOB 6-10 b and fsnyq 10 MS/s-1 GS/s, ENOB taken from the "
                           "survey's SNDR_plot column (the median depends on that choice, as the issue-24 audit "
                           "found); quartiles 13.1 and 49.2 fJ/conv-step (the span); charged at the "
                           "nominal bits (ENOB = bits: optimistic)"),
    "adc_time_s": f"derived: {_MVM}, less the 128 ns integration (t_read_s)",
    "dac_fom_j_per_step": ("our assumption: a pulse-width row driver whose counter and comparator switch once per "
                           "clock for up to 2^bits clocks, ~2 fJ per clock; no published DAC figure was found "
                           "(span 1-10 fJ)"),
    "column_overhead_j": (f"{_CAL}: HERMES-Core's measured 10.5 TOPS/W = 12.48 nJ per full 256x256 MVM ({_HERMES}), "
                          "less the array, DAC and ADC energies this profile models at the calibration conditions "
                          "(uniform 8-bit inputs, mean |x| = 0.5 of full scale; 4 devices per weight at a mean "
                          "2.5 uS; 8-bit ADC), over the 256 columns: the local digital unit, clocking, control, "
                          "leakage and the CCO ADCs' excess over the survey median (span: 0.5x-1.5x)"),
    "i_set_a": f"{_NVSIM}: SetCurrent 150 uA",
    "t_set_s": f"{_NVSIM}: SetPulse 150 ns",
    "i_reset_a": f"{_NVSIM}: ResetCurrent 300 uA",
    "t_reset_s": f"{_NVSIM}: ResetPulse 40 ns",
    "v_write_v": ("our assumption: a 1.6-V write rail, enough to RESET a PCM cell (threshold switching near 1 V, "
                  f"plus the access transistor's 0.3 V, {_NVSIM}: VoltageDropAccessDevice); current-limited drivers "
                  "draw SET and RESET pulses from the same rail (span 1.2-2.0 V). Not the cell energies of Lee et "
                  "al.'s table, which were not read"),
    "write_driver_efficiency": ("our assumption: the write rail is pumped up from the ~0.8-V core supply by a charge "
                                "pump at 50 % efficiency (span 0.3-0.8)"),
    "write_current_budget_a": ("our assumption: one row of a 256-column tile per programming step, 256 drivers x "
                               "150 uA = 38.4 mA per tile, as chips program a row or a group at a time (span: a "
                               "quarter row to four rows, 9.6-153.6 mA)"),
    "e_fp32_mult_j": f"read: FP32 multiply 3.7 pJ, {_HOROWITZ}",
    "e_fp32_add_j": f"read: FP32 add 0.9 pJ, {_HOROWITZ}",
    "e_int32_add_j": f"read: 32-bit integer add 0.1 pJ, {_HOROWITZ}",
    "e_sram_64b_j": f"read: 64-bit access of an 8-KB SRAM 10 pJ, {_HOROWITZ}",
    "e_dram_64b_j": f"read: 64-bit DRAM access, the low end of 1.3-2.6 nJ (the span), {_HOROWITZ}",
    "sram_bytes": ("our assumption: 8 MiB of on-chip SRAM for every digital processor compared, enough for the whole "
                   "training state (FP32 weights, gradients, Adam moments, chi) and the BPTT state of networks of "
                   "this size, as an architect sizes a training chip's buffers; a CPU's or GPU's last-level cache is "
                   "larger (span 1-32 MiB)"),
    "digital_flops_per_s": ("our assumption: the chip's digital side as 512 FP32 multiply-accumulate lanes at 1 GHz "
                            "= 1.02 TFLOP/s, priced by the same per-FLOP energy as the baselines"),
    "cpu_flops_per_s": ("our assumption (vendor datasheet figures, not re-read): Intel Xeon Platinum 8380, 40 cores x "
                        "2.3 GHz x 64 FP32 FLOP/cycle (2 AVX-512 FMA units) = 5.9 TFLOP/s peak"),
    "gpu_flops_per_s": ("read in secondary spec pages (glennklockwood.com/garden/processors/h100: FP32 66.9 TFLOPS "
                        "by vector FMA; gpu.blog/gpus/nvidia-h100-sxm: 67 TFLOPS): NVIDIA H100 SXM, FP32 without "
                        "tensor cores, peak"),
    "e_transfer_j_per_bit": ("our assumption: inputs and outputs cross ~2-3 mm of on-chip wire between the tiles and "
                             "the digital side at ~0.1 pJ/bit/mm (span 0.1 pJ/bit, adjacent, to 10 pJ/bit, an "
                             "off-chip link to a host)"),
    "snn_j_per_synop": ("read in secondary sources: 23.6 pJ per synaptic operation measured on Intel Loihi (Davies et "
                        "al., IEEE Micro 38(1), 82 (2018)), as two public code repositories transcribe it; the "
                        "primary table was not reached. Loihi is a 14-nm chip (span 5-30 pJ: newer chips are "
                        "cheaper per event)"),
    "device_area_um2": "our assumption: 50 F^2 per 1T1R PCM cell at F = 90 nm (the node of the simulated device)",
    "column_periphery_um2": ("derived: a 256x256 core = 2*256^2 ops / 132.9 ns = 0.986 TOPS at 1.59 TOPS/mm2 = "
                             f"0.620 mm2 ({_HERMES}; {_LEGALLO}); less its 256^2 unit cells of 4 PCM devices (8T4R, "
                             "as the issue-24 audit read the paper) x 0.405 um2 leaves 0.514 mm2 of periphery, 10/11 "
                             "of it over the 256 columns (the 10:1 column:row split is our assumption): 1826 um2"),
    "row_periphery_um2": ("derived with column_periphery_um2: 1/11 of the 0.514 mm2 periphery over the 256 rows: "
                          "183 um2"),
}

ASSUMPTION_SPANS: dict[str, tuple[float, float]] = {
    "v_read_v": (0.1, 0.3),
    "adc_fom_j_per_step": (13.1e-15, 49.2e-15),
    "dac_fom_j_per_step": (1e-15, 10e-15),
    "column_overhead_j": (0.5 * 35.91e-12, 1.5 * 35.91e-12),
    "v_write_v": (1.2, 2.0),
    "write_driver_efficiency": (0.3, 0.8),
    "write_current_budget_a": (9.6e-3, 153.6e-3),
    "e_dram_64b_j": (1.3e-9, 2.6e-9),
    "sram_bytes": (1 * 2**20, 32 * 2**20),
    "e_transfer_j_per_bit": (0.1e-12, 10e-12),
    "snn_j_per_synop": (5e-12, 30e-12),
}
"""Plausible spans (low, high) of the assumed and calibrated constants (the sources say why)."""

DEFAULT_PROFILE = CostProfile(
    name="pcm-hermes-45nm",
    node_nm=45,
    v_read_v=0.2,  # V, our assumption
    t_read_s=128e-9,  # s, 2^7 clocks at 1 GHz (HERMES-Core)
    adc_fom_j_per_step=23.6e-15,  # J/conv-step, Murmann ADC survey median
    adc_time_s=5e-9,  # s, 132.9 ns MVM (Le Gallo et al. 2023) − 128 ns integration
    dac_fom_j_per_step=2e-15,  # J/level, our assumption
    column_overhead_j=35.91e-12,  # J per column read, calibrated on HERMES-Core (10.5 TOPS/W)
    i_set_a=150e-6,  # A, NVSim sample_PCRAM.cell
    t_set_s=150e-9,  # s, NVSim sample_PCRAM.cell
    i_reset_a=300e-6,  # A, NVSim sample_PCRAM.cell
    t_reset_s=40e-9,  # s, NVSim sample_PCRAM.cell
    v_write_v=1.6,  # V, our assumption
    write_driver_efficiency=0.5,  # our assumption
    write_current_budget_a=38.4e-3,  # A per tile, our assumption (one 256-column row)
    e_fp32_mult_j=3.7e-12,  # J, Horowitz ISSCC 2014, 45 nm
    e_fp32_add_j=0.9e-12,  # J, Horowitz ISSCC 2014, 45 nm
    e_int32_add_j=0.1e-12,  # J, Horowitz ISSCC 2014, 45 nm
    e_sram_64b_j=10e-12,  # J, Horowitz ISSCC 2014, 8-KB SRAM
    e_dram_64b_j=1.3e-9,  # J, Horowitz ISSCC 2014
    sram_bytes=8 * 2**20,  # bytes, our assumption
    digital_flops_per_s=1.024e12,  # FLOP/s, our assumption
    cpu_flops_per_s=5.9e12,  # FLOP/s, Xeon Platinum 8380 peak
    gpu_flops_per_s=67e12,  # FLOP/s, H100 SXM FP32 peak
    e_transfer_j_per_bit=0.3e-12,  # J/bit, our assumption (on-chip)
    snn_j_per_synop=23.6e-12,  # J, Loihi (Davies et al. 2018)
    device_area_um2=0.405,  # µm², our assumption (50 F² at 90 nm)
    column_periphery_um2=1826.0,  # µm², derived from HERMES-Core's area density
    row_periphery_um2=182.6,  # µm², derived from HERMES-Core's area density
    sources=SOURCES,
)

HERMES_CORE = dataclasses.replace(
    DEFAULT_PROFILE, name="hermes-core", e_transfer_j_per_bit=0.0,
    sources={**SOURCES, "e_transfer_j_per_bit": f"0: HERMES-Core's 10.5 TOPS/W is the core's alone ({_HERMES})"})
"""A profile set up like HERMES-Core: the default's cores, measured alone (no transfers)."""

LEGALLO_64CORE = dataclasses.replace(
    DEFAULT_PROFILE, name="legallo-64core",
    sources={**SOURCES, "e_transfer_j_per_bit": (
        "our assumption: every MVM's inputs and outputs cross the 64-core chip's on-chip network, ~2-3 mm at "
        f"~0.1 pJ/bit/mm ({_LEGALLO})")})
"""A profile set up like the 64-core chip: the same cores, every MVM's inputs and outputs on its network."""

PROFILES: dict[str, CostProfile] = {p.name: p for p in (DEFAULT_PROFILE, HERMES_CORE, LEGALLO_64CORE)}


def available_profiles() -> list[str]:
    return list(PROFILES)


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
