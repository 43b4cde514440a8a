"""Hardware cost profiles: every constant the energy, latency and area estimate uses, with units
and a source.

A profile is a frozen dataclass loaded with :func:`pcmsim.typedconfig.load` from a JSON object of
exactly its fields (every field required: a missing, unknown, mistyped, negative or zero constant
is refused with one line naming it). Every constant carries its source: the ``sources`` object
maps each constant's name to a non-empty string (a constant without one, or a source for no
constant, is refused too). Named profiles live in :data:`PROFILES`; ``--cost-profile NAME|FILE``
takes a name or a JSON file (:func:`get_profile`).

Sources of :data:`DEFAULT_PROFILE` (``pcm-hermes-45nm``) are the strings in :data:`SOURCES`; in
short (*read*: the number was read with this project's search tools; *derived*: computed from
read numbers, the arithmetic given; *recalled*: from memory of the paper, not re-read; *our
assumption*: no source was found, the reasoning is given):

- ``v_read_v = 0.2 V``: *our assumption*.
- ``t_read_s = 128 ns``, ``adc_time_s = 5 ns``: *derived* from IBM's 14-nm PCM compute core
  (HERMES-Core, Khaddam-Aljameh et al., IEEE JSSC 2022, abstract: 256×256 core, 1 GHz clock) and
  its 64-core chip (Le Gallo et al., Nat. Electron. 6, 680 (2023), abstract: 63.1 TOPS for
  8-bit MVMs in one-phase mode): one MVM of a core takes 2·256²·64 / 63.1 TOPS = 132.9 ns; the
  8-bit input as a sign and a 7-bit pulse width at 1 GHz is 128 ns; the rest, 5 ns, is charged to
  the ADC read-out.
- ``e_set_j = 13.5 pJ``, ``t_set_s = 150 ns``, ``e_reset_j = 19.2 pJ``, ``t_reset_s = 40 ns``:
  the 90-nm PCM cell of Lee et al., "Architecting phase change memory as a scalable DRAM
  alternative", ISCA 2009, as NVSim ships it (SEAL-UCSB/NVSim, ``sample_PCRAM.cell``: SET 150 µA
  for 150 ns, RESET 300 µA for 40 ns; *read*); the energies are Lee et al.'s Table 2 (*recalled*;
  consistent with I·V·t at 0.6 V and 1.6 V). A binary memory cell, not the partial-SET pulses of
  the analog mushroom cell the device model simulates.
- ``adc_fom_j_per_step = 23.6 fJ``: Murmann, "ADC Performance Survey 1997–2025" (bmurmann/
  ADC-survey, ``xls/ADCsurvey_latest.xlsx`` = rev. 2025-06-09, ISSCC and VLSI sheets; *read*):
  the median Walden figure of merit (``FOMW_hf``) of the 22 Nyquist ADCs published 2015–2025
  with an ENOB of 6–10 bits at 10 MS/s–1 GS/s (quartiles 13.1 and 49.2 fJ/conv-step). Charged
  at the nominal bits (ENOB = bits: optimistic).
- ``dac_fom_j_per_step = 2 fJ``: *our assumption*: a pulse-width-modulated row driver whose
  counter and comparator switch once per clock for up to 2^bits clocks, ≈2 fJ per clock.
- ``e_fp32_mult_j``, ``e_fp32_add_j``, ``e_sram_64b_j``, ``e_dram_64b_j``: Horowitz,
  "Computing's energy problem", ISSCC 2014, 45 nm at 0.9 V (``node_nm = 45``; not scaled). The
  first three *read* in a reproduction of his table (Table 3 of PMC8934428, Front. Neurol.); the
  DRAM figure *recalled*.
- ``cpu_*``: Intel Xeon Platinum 8380 (40 cores, 2.3 GHz base, 2 AVX-512 FMA units: 64 FP32
  FLOP/cycle/core → 5.9 TFLOP/s; 270 W TDP); ``gpu_*``: NVIDIA H100 SXM datasheet (67 TFLOP/s
  FP32, 700 W); peak throughput at TDP, a lower bound on energy per FLOP (*recalled*).
- ``device_area_um2 = 0.405 µm²``: *our assumption*: 50 F² per 1T1R cell at F = 90 nm.
- ``column_periphery_um2 = 2000 µm²``, ``row_periphery_um2 = 200 µm²``: *derived*: a HERMES core
  of 256×256 weights delivers 2·256² ops per 132.9 ns = 0.99 TOPS at 1.59 TOPS/mm²
  (Khaddam-Aljameh et al. 2022, abstract), i.e. 0.62 mm²; less 256²·2 devices at 0.405 µm²
  leaves 0.567 mm² of periphery (ADCs, drivers, local digital unit), split 10:1 between the 256
  columns and the 256 rows (*our assumption*: the ADC and its read-out are the large part).

Cross-check against a measured chip: with these constants one MVM of a 256×256 tile with every
input at full scale costs 256 · 23.6 fJ · 2⁹ = 3.09 nJ of ADCs, 256 · 2 fJ · 2⁷ = 66 pJ of DACs
and V²·t·ΣG = 0.04 · 128 ns · (2·256² · 5 µS) = 3.4 nJ of array at a mean 5 µS per device: about
6.5 nJ, against 2·256² ops / 10.5 TOPS/W = 12.5 nJ measured on HERMES-Core (abstract). The
estimate covers about half of a real core's energy; static power, control and the core's local
digital unit are what it leaves out.
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
    """The constants of an energy, latency and area estimate (SI units; sources: ``sources``).

    Attributes:
        name: the profile's name.
        node_nm: CMOS node of the digital energies, nm.
        v_read_v: read voltage of a full-scale input, V.
        t_read_s: integration time of one MVM (full-scale pulse width), s.
        e_set_j, t_set_s: energy and duration of one SET pulse on one device, J and s.
        e_reset_j, t_reset_s: energy and duration of one RESET pulse on one device, J and s.
        adc_fom_j_per_step: ADC Walden figure of merit, J per conversion step (E = FoM · 2^bits).
        adc_time_s: one ADC conversion after the integration, s.
        dac_fom_j_per_step: DAC energy per level, J (E = FoM · 2^bits per nonzero conversion).
        e_fp32_mult_j, e_fp32_add_j: one FP32 multiplication and addition, J.
        e_sram_64b_j: one 64-bit SRAM read, J.
        e_dram_64b_j: one 64-bit DRAM access, J.
        cpu_j_per_flop, cpu_flops_per_s: CPU baseline energy per FLOP (J) and throughput (FLOP/s).
        gpu_j_per_flop, gpu_flops_per_s: GPU baseline energy per FLOP (J) and throughput (FLOP/s).
        host_flops_per_s: throughput of the PCM chip's digital side (latency only), FLOP/s.
        device_area_um2: area of one PCM device with its access transistor, µm².
        column_periphery_um2: periphery per tile column (ADC, integrator, read-out), µm².
        row_periphery_um2: periphery per tile row (DAC, driver), µm².
        sources: the source of every constant above, by field name (every one required).
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
        """One FP32 FLOP of the chip's digital side: half a multiply-accumulate, J."""
        return 0.5 * (self.e_fp32_mult_j + self.e_fp32_add_j)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_HERMES = ("Khaddam-Aljameh et al., 'HERMES-Core: a 1.59-TOPS/mm2 PCM on 14-nm CMOS in-memory compute core "
           "using 300-ps/LSB linearized CCO-based ADCs', IEEE JSSC 2022, abstract (256x256 core, 1 GHz clock, "
           "1.59 TOPS/mm2)")
_LEGALLO = ("Le Gallo et al., 'A 64-core mixed-signal in-memory compute chip based on phase-change memory for "
            "deep neural network inference', Nat. Electron. 6, 680 (2023), abstract (64 cores, 63.1 TOPS for 8-bit "
            "MVMs, one-phase mode)")
_MVM = f"derived: one core MVM = 2*256^2*64 ops / 63.1 TOPS = 132.9 ns ({_LEGALLO}; core size: {_HERMES})"
_LEE = ("Lee, Ipek, Mutlu, Burger, 'Architecting phase change memory as a scalable DRAM alternative', ISCA 2009, "
        "90-nm cell as shipped in NVSim (SEAL-UCSB/NVSim sample_PCRAM.cell")
_HOROWITZ = "Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014, 45 nm, 0.9 V (recalled)"
_HOROWITZ_READ = ("Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014, 45 nm, 0.9 V; "
                  "read in the reproduction of his energy table in Table 3 of PMC8934428 (Front. Neurol.: float32 "
                  "add 0.9 pJ, multiply 3.7 pJ, a 64-bit 8 kB cache access 10 pJ)")
_XEON = ("Intel Xeon Platinum 8380: 40 cores x 2.3 GHz x 64 FP32 FLOP/cycle (2 AVX-512 FMA) = 5.9 TFLOP/s, 270 W TDP "
         "(recalled datasheet figures; peak at TDP, a lower bound on J/FLOP)")
_H100 = "NVIDIA H100 SXM datasheet: 67 TFLOP/s FP32 (no tensor cores), 700 W (recalled; peak at TDP)"

SOURCES: dict[str, str] = {
    "node_nm": f"the node of the digital energies: {_HOROWITZ}; not scaled",
    "v_read_v": ("our assumption: PCM is read well below its ~1 V threshold switching, at a few tenths of a volt; "
                 "no published read voltage of the HERMES chips was found"),
    "t_read_s": (f"derived: an 8-bit input as sign and 7-bit pulse width at the 1 GHz clock = 2^7 ns = 128 ns "
                 f"({_HERMES}); consistent with the {_MVM}"),
    "e_set_j": (f"{_LEE}: SET 150 uA for 150 ns, read); 13.5 pJ: Lee et al. Table 2 (recalled; = 150 uA x 0.6 V x "
                "150 ns). A binary memory cell, not the simulated analog partial-SET pulse"),
    "t_set_s": f"{_LEE}: SetPulse 150 ns, read)",
    "e_reset_j": (f"{_LEE}: RESET 300 uA for 40 ns, read); 19.2 pJ: Lee et al. Table 2 (recalled; = 300 uA x 1.6 V "
                  "x 40 ns)"),
    "t_reset_s": f"{_LEE}: ResetPulse 40 ns, read)",
    "adc_fom_j_per_step": ("Murmann, 'ADC Performance Survey 1997-2025', github.com/bmurmann/ADC-survey, "
                           "xls/ADCsurvey_latest.xlsx (rev. 2025-06-09), ISSCC + VLSI sheets: median FOMW_hf of the 22 "
                           "Nyquist ADCs of 2015-2025 with ENOB 6-10 b and fsnyq 10 MS/s-1 GS/s (quartiles 13.1 and "
                           "49.2 fJ/conv-step); charged at the nominal bits"),
    "adc_time_s": f"derived: the {_MVM} less the 128 ns integration (t_read_s)",
    "dac_fom_j_per_step": ("our assumption: a pulse-width row driver whose counter and comparator switch once per "
                           "clock for up to 2^bits clocks, ~2 fJ per clock; no published DAC figure was found"),
    "e_fp32_mult_j": f"FP32 multiply 3.7 pJ: {_HOROWITZ_READ}",
    "e_fp32_add_j": f"FP32 add 0.9 pJ: {_HOROWITZ_READ}",
    "e_sram_64b_j": f"64-bit read of an 8 KB SRAM, 10 pJ: {_HOROWITZ_READ}",
    "e_dram_64b_j": f"64-bit DRAM access, low end of 1.3-2.6 nJ (the baseline is not overstated): {_HOROWITZ}",
    "cpu_j_per_flop": f"270 W / 5.9 TFLOP/s: {_XEON}",
    "cpu_flops_per_s": _XEON,
    "gpu_j_per_flop": f"700 W / 67 TFLOP/s: {_H100}",
    "gpu_flops_per_s": _H100,
    "host_flops_per_s": f"the chip's host in the loop taken as the GPU: {_H100}",
    "device_area_um2": "our assumption: 50 F^2 per 1T1R PCM cell at F = 90 nm (the node of the simulated device)",
    "column_periphery_um2": ("derived: a 256x256 core = 2*256^2 ops / 132.9 ns = 0.99 TOPS at 1.59 TOPS/mm2 = "
                             f"0.62 mm2 ({_HERMES}; {_LEGALLO}); less 256^2*2 devices x 0.405 um2 leaves 0.567 mm2 "
                             "of periphery, 10/11 of it over the 256 columns (the 10:1 column:row split is our "
                             "assumption)"),
    "row_periphery_um2": "derived with column_periphery_um2: 1/11 of the 0.567 mm2 periphery over the 256 rows "
                         "(the split is our assumption)",
}

DEFAULT_PROFILE = CostProfile(
    name="pcm-hermes-45nm",
    node_nm=45,
    v_read_v=0.2,  # V, our assumption
    t_read_s=128e-9,  # s, 2^7 clocks at 1 GHz (HERMES-Core)
    e_set_j=13.5e-12,  # J, Lee et al. ISCA 2009
    t_set_s=150e-9,  # s, Lee et al. ISCA 2009 (NVSim sample_PCRAM.cell)
    e_reset_j=19.2e-12,  # J, Lee et al. ISCA 2009
    t_reset_s=40e-9,  # s, Lee et al. ISCA 2009 (NVSim sample_PCRAM.cell)
    adc_fom_j_per_step=23.6e-15,  # J/conv-step, Murmann ADC survey median (see SOURCES)
    adc_time_s=5e-9,  # s, 132.9 ns MVM (Le Gallo et al. 2023) − 128 ns integration
    dac_fom_j_per_step=2e-15,  # J/level, our assumption
    e_fp32_mult_j=3.7e-12,  # J, Horowitz ISSCC 2014, 45 nm
    e_fp32_add_j=0.9e-12,  # J, Horowitz ISSCC 2014, 45 nm
    e_sram_64b_j=10e-12,  # J, Horowitz ISSCC 2014
    e_dram_64b_j=1.3e-9,  # J, Horowitz ISSCC 2014
    cpu_j_per_flop=46e-12,  # J, 270 W / 5.9 TFLOP/s
    cpu_flops_per_s=5.9e12,  # FLOP/s, Xeon Platinum 8380
    gpu_j_per_flop=10.4e-12,  # J, 700 W / 67 TFLOP/s
    gpu_flops_per_s=67e12,  # FLOP/s, H100 SXM
    host_flops_per_s=67e12,  # FLOP/s, the GPU above
    device_area_um2=0.405,  # µm², our assumption (50 F² at 90 nm)
    column_periphery_um2=2000.0,  # µm², derived from HERMES-Core's area density
    row_periphery_um2=200.0,  # µm², derived from HERMES-Core's area density
    sources=SOURCES,
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
