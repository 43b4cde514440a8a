"""Measured device data: the three CSV kinds that ``pcmsim device fit`` reads, and writers that
measure a device model the way a lab would (round trips for tests and users).

Every file is a CSV with a header line; columns in any order, extra columns ignored. Units are in
the column names: conductance ``g_us`` (µS; also ``g_ns``, ``g_ms``, ``g_s``), time ``t_s``
(seconds; also ``t_ms``, ``t_min``, ``t_h``).

- **pulse response** ``device,pulse,g_us``: for each device a read right after a RESET (``pulse``
  0) and after each of consecutive SET pulses 1, 2, …; a device may have several such cycles (each
  starts again at ``pulse`` 0, i.e. with a RESET). → ΔG statistics, RESET distribution, G_max.
- **drift** ``device,t_s,g_us``: reads of each device at times since it was programmed
  (``t_s`` 0 = right after programming; strictly increasing per device). → ν per device, t0.
- **read noise** ``device,t_s,g_us``: repeated reads of each device at increasing times (close
  together, so that drift between them is small; a linear trend per device is removed). → σ(G).

A bad file raises :class:`CSVFormatError` with one line: ``FILE:LINE: problem; expected …``.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .base import DeviceModel
from .empirical import CSVFormatError
from .fileio import atomic_write
from .verify import program_and_verify

KINDS = ("pulse", "drift", "read-noise")
"""The measurement kinds, as named on the command line (``KIND=PATH``)."""

G_UNITS = {"g_us": 1.0, "g_ns": 1e-3, "g_ms": 1e3, "g_s": 1e6}  # factor to µS
T_UNITS = {"t_s": 1.0, "t_ms": 1e-3, "t_min": 60.0, "t_h": 3600.0}  # factor to s

MIN_DEVICES = 10
"""Fewest devices a file must hold: a spread (device-to-device, of ν, of the read noise) from fewer
is not an estimate worth fitting (ours)."""


@dataclass(frozen=True)
class PulseData:
    """A pulse-response file, flattened to one entry per SET pulse (all float64 / int64 numpy arrays).

    ``g_before``, ``g_after``: the reads around the pulse, µS; ``n``: the pulse number since the last
    RESET (1 = first); ``device``: the device's index (0 … n_devices − 1); ``cycle``: a global index of
    the RESET cycle. ``g_reset``: every pulse-0 read, µS. ``traces``: ``[cycles, max pulses + 1]`` reads
    (NaN past a cycle's end) for the report.
    """

    path: str
    g_before: np.ndarray
    g_after: np.ndarray
    n: np.ndarray
    device: np.ndarray
    cycle: np.ndarray
    g_reset: np.ndarray
    traces: np.ndarray
    n_devices: int


@dataclass(frozen=True)
class TimeSeriesData:
    """A drift or read-noise file: reads in file order grouped per device (time increasing).

    ``t_s``, ``g_us``: float64 arrays; ``device``: the device's index; ``n_devices``.
    """

    path: str
    kind: str
    t_s: np.ndarray
    g_us: np.ndarray
    device: np.ndarray
    n_devices: int


def _open_rows(path: str | os.PathLike, kind: str, columns: tuple[str, ...]):
    """Yield ``(line, {column: text})`` for the data rows of ``path``; checks the header."""
    path = Path(path)
    want = ",".join(columns)
    if not path.is_file():
        raise CSVFormatError(f"{path}: no such file (expected a {kind} CSV with columns {want})")
    with path.open(newline="", encoding="utf-8-sig") as fh:  # -sig: a spreadsheet's byte-order mark is no column
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise CSVFormatError(f"{path}:1: empty file; expected a header line {want}") from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise CSVFormatError(f"{path}:1: not a text CSV ({exc}); expected a header line {want}") from None
        col: dict[str, tuple[int, float]] = {}
        missing = []
        for c in columns:
            units = G_UNITS if c == "g_us" else T_UNITS if c == "t_s" else {c: 1.0}
            hit = [(header.index(u), f) for u, f in units.items() if u in header]
            if len(hit) > 1:
                both = [u for u in units if u in header]
                raise CSVFormatError(f"{path}:1: header has {len(both)} columns for {c.split('_')[0]} "
                                     f"({', '.join(both)}); expected one, in one unit")
            if not hit:
                missing.append(c if len(units) == 1 else f"{c} (or {', '.join(u for u in units if u != c)})")
            else:
                col[c] = hit[0]
        if missing:
            raise CSVFormatError(f"{path}:1: header {','.join(header)!r} lacks column(s) {'; '.join(missing)}; "
                                 f"expected {want}")
        try:
            for row in reader:
                if not row or all(not c.strip() for c in row):
                    continue
                line = reader.line_num
                need = 1 + max(i for i, _ in col.values())  # extra columns after ours may be missing
                if len(row) < need:
                    raise CSVFormatError(f"{path}:{line}: {len(row)} field(s); expected at least {need} "
                                         f"({','.join(header[:need])})")
                yield line, {c: (row[i].strip(), f) for c, (i, f) in col.items()}
        except (UnicodeDecodeError, csv.Error) as exc:
            raise CSVFormatError(f"{path}:{reader.line_num}: unreadable line ({exc}); expected CSV text") from None


def _number(path: Path, line: int, name: str, text: str, what: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise CSVFormatError(f"{path}:{line}: field {name!r} = {text!r} is not a number; expected {what}") from None
    if not math.isfinite(v):
        raise CSVFormatError(f"{path}:{line}: field {name!r} = {text!r}; expected {what}")
    return v


def _conductance(path: Path, line: int, field: tuple[str, float]) -> float:
    text, factor = field
    what = "a finite conductance ≥ 0"
    g = _number(path, line, "g", text, what)
    if g < 0:
        raise CSVFormatError(f"{path}:{line}: negative conductance {text!r}; expected {what}")
    return g * factor


def _device_id(path: Path, line: int, text: str) -> str:
    if not text:
        raise CSVFormatError(f"{path}:{line}: field 'device' is empty; expected a device id")
    return text


def _check_devices(path: Path, n: int, kind: str, what: str) -> None:
    if n < MIN_DEVICES:
        raise CSVFormatError(f"{path}: {n} device(s) with {what}: too few devices for a spread; expected at "
                             f"least {MIN_DEVICES} for a {kind} file")


def read_pulse_csv(path: str | os.PathLike) -> PulseData:
    """Read and check a pulse-response file (see the module docstring)."""
    p = Path(path)
    cycles: list[tuple[int, list[float]]] = []  # (device index, reads from pulse 0)
    last: dict[str, tuple[int, int]] = {}  # device → (its index, index into cycles of its open cycle)
    first_line: dict[str, int] = {}
    for line, f in _open_rows(p, "pulse-response", ("device", "pulse", "g_us")):
        dev = _device_id(p, line, f["device"][0])
        raw = f["pulse"][0]
        try:
            k = int(raw)
        except ValueError:
            raise CSVFormatError(f"{p}:{line}: field 'pulse' = {raw!r} is not an integer; expected an integer ≥ 0 "
                                 "(0: the read after a RESET)") from None
        if k < 0:
            raise CSVFormatError(f"{p}:{line}: field 'pulse' = {k}; expected an integer ≥ 0")
        g = _conductance(p, line, f["g_us"])
        if k == 0:  # a RESET: a new cycle
            d_idx = last[dev][0] if dev in last else len(last)
            cycles.append((d_idx, [g]))
            last[dev] = (d_idx, len(cycles) - 1)
            first_line.setdefault(dev, line)
            continue
        if dev not in last:
            raise CSVFormatError(f"{p}:{line}: device {dev!r} starts at pulse {k}; expected pulse 0 (the read "
                                 "after a RESET) first")
        reads = cycles[last[dev][1]][1]
        if k != len(reads):
            raise CSVFormatError(f"{p}:{line}: device {dev!r} pulse {k} follows pulse {len(reads) - 1}; expected "
                                 f"pulse {len(reads)} (or 0 after a RESET)")
        reads.append(g)
    if not cycles:
        raise CSVFormatError(f"{p}: no data rows; expected rows of device,pulse,g_us")
    n_dev = len(last)
    for dev, (d_idx, _) in last.items():
        if all(len(r) < 2 for i, r in cycles if i == d_idx):
            raise CSVFormatError(f"{p}:{first_line[dev]}: device {dev!r} has one point (pulse 0 only); expected "
                                 "the reads after SET pulses 1, 2, … too")
    _check_devices(p, n_dev, "pulse-response", "SET pulses")
    width = max(len(r) for _, r in cycles)
    traces = np.full((len(cycles), width), np.nan)
    for i, (_, r) in enumerate(cycles):
        traces[i, :len(r)] = r
    before, after = traces[:, :-1], traces[:, 1:]
    ok = ~np.isnan(after)
    ci, ki = np.nonzero(ok)
    dev_of_cycle = np.array([d for d, _ in cycles], dtype=np.int64)
    return PulseData(
        path=str(p), g_before=before[ok], g_after=after[ok], n=(ki + 1).astype(np.int64),
        device=dev_of_cycle[ci], cycle=ci.astype(np.int64), g_reset=traces[:, 0].copy(), traces=traces,
        n_devices=n_dev,
    )


def read_time_series_csv(path: str | os.PathLike, kind: str) -> TimeSeriesData:
    """Read and check a drift (``kind="drift"``) or read-noise (``"read-noise"``) file."""
    if kind not in ("drift", "read-noise"):
        raise ValueError(f"kind {kind!r} is invalid: expected drift or read-noise")
    p = Path(path)
    index: dict[str, int] = {}
    last_t: dict[str, tuple[float, int]] = {}
    t_list: list[float] = []
    g_list: list[float] = []
    d_list: list[int] = []
    for line, f in _open_rows(p, kind, ("device", "t_s", "g_us")):
        dev = _device_id(p, line, f["device"][0])
        t = _number(p, line, "t", f["t_s"][0], "a finite time ≥ 0") * f["t_s"][1]
        if t < 0:
            raise CSVFormatError(f"{p}:{line}: negative time {f['t_s'][0]!r}; expected a time ≥ 0 since programming")
        g = _conductance(p, line, f["g_us"])  # zero reads (clipped at 0 µS) are kept; the drift fit skips them
        if dev in last_t and t <= last_t[dev][0]:
            raise CSVFormatError(f"{p}:{line}: device {dev!r}: time not increasing ({t:g} s after "
                                 f"{last_t[dev][0]:g} s on line {last_t[dev][1]}); expected strictly increasing times")
        last_t[dev] = (t, line)
        d_list.append(index.setdefault(dev, len(index)))
        t_list.append(t)
        g_list.append(g)
    if not d_list:
        raise CSVFormatError(f"{p}: no data rows; expected rows of device,t_s,g_us")
    dev_arr = np.asarray(d_list, dtype=np.int64)
    counts = np.bincount(dev_arr, minlength=len(index))
    need = 2 if kind == "drift" else 2
    if counts.min() < need:
        bad = next(d for d, i in index.items() if counts[i] < need)
        raise CSVFormatError(f"{p}:{last_t[bad][1]}: device {bad!r} has one point; expected at least {need} reads "
                             f"per device for {kind}")
    _check_devices(p, len(index), kind, "reads")
    order = np.argsort(dev_arr, kind="stable")  # grouped per device, time increasing within
    return TimeSeriesData(path=str(p), kind=kind, t_s=np.asarray(t_list)[order], g_us=np.asarray(g_list)[order],
                          device=dev_arr[order], n_devices=len(index))


# ---- writers: measure a model as a lab would ------------------------------------------------
def _write_rows(path: str | os.PathLike, header: tuple[str, ...], rows) -> Path:  # noqa: ANN001 - rows: iterable
    def write(fh) -> None:  # noqa: ANN001 - a text file
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)

    return atomic_write(path, write, newline="")


def _program(model: DeviceModel, n_devices: int, g_lo_us: float, g_hi_us: float, gen: torch.Generator, t_s: float):
    """A population programmed to targets uniform in [g_lo, g_hi] at ``t_s`` (program-and-verify
    without centring for pulse-level models: the targets need not be met on average)."""
    targets = g_lo_us + (g_hi_us - g_lo_us) * torch.rand(n_devices, generator=gen)
    state = model.init_state((n_devices,), generator=gen, t_s=t_s)
    if hasattr(model.params, "program_tolerance_us"):
        program_and_verify(model, state, targets, t_s, gen, tolerance_us=model.params.program_tolerance_us,
                           max_pulses=model.params.program_max_pulses, centred=False)
    else:
        model.program(state, targets, t_s, gen)
    return state


DRIFT_TIMES_S = (0.0, *np.logspace(0.0, 6.0, 25).tolist())
"""Default read times of :func:`write_drift_csv`: right after programming, then 1 s … 11.6 days,
four per decade (ours)."""


def write_drift_csv(model: DeviceModel, path: str | os.PathLike, *, n_devices: int = 2000,
                    g_range_us: tuple[float, float] | None = None, times_s: tuple[float, ...] = DRIFT_TIMES_S,
                    seed: int = 0, read_noise: bool = True) -> Path:
    """Program ``n_devices`` to targets uniform over ``g_range_us`` (default: 5 % … 90 % of G_max)
    and read each at ``times_s`` after programming; writes ``device,t_s,g_us`` (atomically)."""
    gen = torch.Generator().manual_seed(seed)
    lo, hi = g_range_us or (0.05 * model.g_max_us, 0.9 * model.g_max_us)
    t_p = 0.0
    state = _program(model, n_devices, lo, hi, gen, t_p)
    reads = torch.stack([model.read(state, t_p + t, gen, noise=read_noise) for t in times_s], 1).tolist()
    rows = ((d, f"{t:.6g}", f"{g:.6g}") for d in range(n_devices) for t, g in zip(times_s, reads[d]))
    return _write_rows(path, ("device", "t_s", "g_us"), rows)


def write_read_noise_csv(model: DeviceModel, path: str | os.PathLike, *, n_devices: int = 2000, n_reads: int = 20,
                         delay_s: float = 1.0, interval_s: float = 1.0,
                         g_range_us: tuple[float, float] | None = None, seed: int = 0) -> Path:
    """Program ``n_devices`` to targets uniform over ``g_range_us`` (default: 5 % … 90 % of G_max)
    and read each ``n_reads`` times, ``delay_s`` after programming and ``interval_s`` apart;
    writes ``device,t_s,g_us`` with ``t_s`` the time since programming (atomically)."""
    gen = torch.Generator().manual_seed(seed)
    lo, hi = g_range_us or (0.05 * model.g_max_us, 0.9 * model.g_max_us)
    state = _program(model, n_devices, lo, hi, gen, 0.0)
    times = [delay_s + k * interval_s for k in range(n_reads)]
    reads = torch.stack([model.read(state, t, gen) for t in times], 1).tolist()
    rows = ((d, f"{t:.6g}", f"{g:.6g}") for d in range(n_devices) for t, g in zip(times, reads[d]))
    return _write_rows(path, ("device", "t_s", "g_us"), rows)


def write_pulse_response_csv(
    model: DeviceModel, path: str | os.PathLike, *, n_devices: int = 1000, n_pulses: int = 30, n_cycles: int = 1,
    seed: int = 0, t_s: float = 0.0, read_noise: bool = False, device: torch.device | str | None = None,
) -> Path:
    """Measure ``model`` as a lab would and write ``device,pulse,g_us`` rows (atomically): each device
    starts from a RESET (pulse 0) and gets ``n_pulses`` SET pulses, read after each at the pulse time
    (noise-free unless ``read_noise``); ``n_cycles`` such RESET cycles per device (the same devices,
    so a model with device-to-device variation shows it)."""
    gen = torch.Generator(device=device or "cpu").manual_seed(seed)
    state = model.init_state((n_devices,), device=device, generator=gen, t_s=t_s)
    rows: list[tuple[int, int, str]] = []
    for c in range(n_cycles):
        if c:
            model.reset(state, None, t_s, gen)
        trace = [model.read(state, t_s, gen, noise=read_noise).cpu()]
        for _ in range(n_pulses):
            model.set_pulse(state, None, t_s, gen)
            trace.append(model.read(state, t_s, gen, noise=read_noise).cpu())
        vals = torch.stack(trace, 1).tolist()
        rows += [(d, k, f"{v:.6g}") for d in range(n_devices) for k, v in enumerate(vals[d])]
    return _write_rows(path, ("device", "pulse", "g_us"), rows)


def write_measurements(model: DeviceModel, out_dir: str | os.PathLike, *, n_devices: int = 4000, n_pulses: int = 30,
                       seed: int = 0) -> list[Path]:
    """Measure ``model`` as a lab would (``pcmsim device measure``): ``pulses.csv`` (``n_devices``
    devices × ``n_pulses`` SET pulses after a RESET), ``drift.csv`` and ``reads.csv`` (half as many
    devices each) in ``out_dir``; returns their paths. For a round trip or a worked example."""
    if n_devices < 2 * MIN_DEVICES or n_pulses < 1:
        raise ValueError(f"n_devices={n_devices}, n_pulses={n_pulses} are invalid: expected n_devices ≥ "
                         f"{2 * MIN_DEVICES} and n_pulses ≥ 1")
    out = Path(out_dir)
    return [
        write_pulse_response_csv(model, out / "pulses.csv", n_devices=n_devices, n_pulses=n_pulses, seed=seed),
        write_drift_csv(model, out / "drift.csv", n_devices=n_devices // 2, seed=seed + 1),
        write_read_noise_csv(model, out / "reads.csv", n_devices=n_devices // 2, seed=seed + 2),
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m device_models.measurements MODEL OUT.csv [--n-devices N] [--n-pulses K] [--n-cycles C]
    [--seed S] [--read-noise]``: a pulse-response CSV of a registered model."""
    import argparse  # noqa: PLC0415

    from .registry import get  # noqa: PLC0415 - the package registers the models before this runs

    ap = argparse.ArgumentParser(description="Write a pulse-response CSV (device,pulse,g_us) from a device model.")
    ap.add_argument("model", help="registered device model name, e.g. pcm-nandakumar2018")
    ap.add_argument("out", help="CSV file to write")
    ap.add_argument("--n-devices", type=int, default=1000)
    ap.add_argument("--n-pulses", type=int, default=30)
    ap.add_argument("--n-cycles", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--read-noise", action="store_true", help="record noisy reads")
    args = ap.parse_args(argv)
    out = write_pulse_response_csv(get(args.model), args.out, n_devices=args.n_devices, n_pulses=args.n_pulses,
                                   n_cycles=args.n_cycles, seed=args.seed, read_noise=args.read_noise)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
