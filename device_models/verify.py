"""Program-and-verify of SET-only devices, its centring calibration, and the pulse-level device base class.

The calibration (:func:`verify_response`: the mean outcome of the verify loop for a grid of aims,
measured with the model's own physics) is computed once per model, parameters, window and budget,
and kept on disk (:func:`verify_cache_dir`), so it is paid once per machine, not inside the first
``program()`` of every process; computing it logs one line to the logger ``pcmsim.devices``.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .base import DeviceModel
from .checks import DeviceParameterError, check_int
from .state import DeviceState, ProgramReport

VERIFY_CALIBRATION = {"aims": 96, "devices": 16384, "seed": 0x5EED}
"""How :func:`verify_response` measures the centring curve: aims on a grid, devices per aim, and
the seed of its own generator (the run's random streams are not touched)."""

_RESPONSES: dict[tuple[Any, ...], tuple[Tensor, Tensor]] = {}
_LOG = logging.getLogger("pcmsim.devices")
CACHE_FORMAT = 1
"""Part of every cache key: raise it when the calibration's method changes."""


def verify_cache_dir() -> Path | None:
    """Where calibrations are kept: ``$PCMSIM_CACHE/verify``, else ``$XDG_CACHE_HOME/pcmsim/verify`` or
    ``~/.cache/pcmsim/verify``; ``None`` (memory only) with ``PCMSIM_CACHE=off``."""
    root = os.environ.get("PCMSIM_CACHE", "")
    if root.lower() in ("off", "0", "none"):
        return None
    if root:
        return Path(root).expanduser() / "verify"
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "pcmsim" / "verify"


def _cache_key(model: DeviceModel, tolerance_us: float, max_pulses: int) -> str:
    """A digest of everything the calibration depends on: the model's class and source, its parameters,
    the window and budget, the calibration grid and seed, this module's source and torch's version."""
    parts = {
        "format": CACHE_FORMAT, "model": f"{type(model).__module__}.{type(model).__qualname__}",
        "params": asdict(model.params), "tolerance_us": float(tolerance_us), "max_pulses": int(max_pulses),
        "calibration": VERIFY_CALIBRATION, "torch": torch.__version__,
        "sources": [hashlib.sha256(inspect.getsource(m).encode()).hexdigest()
                    for m in (inspect.getmodule(type(model)), inspect.getmodule(verify_response)) if m is not None],
    }
    text = json.dumps(parts, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _load_cached(path: Path) -> tuple[Tensor, Tensor] | None:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        means, aims = data["means"], data["aims"]
    except Exception:  # noqa: BLE001 - a missing, partial or foreign file is recomputed
        return None
    if not (isinstance(means, Tensor) and isinstance(aims, Tensor) and means.shape == aims.shape):
        return None
    return means, aims


def _store(path: Path, means: Tensor, aims: Tensor) -> None:
    from .fileio import atomic_write

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda fh: torch.save({"means": means, "aims": aims}, fh), binary=True)
    except OSError as exc:  # a read-only cache costs time, never a run
        _LOG.warning("program-and-verify calibration not cached (%s: %s)", path, exc)


def verify_response(model: DeviceModel, tolerance_us: float, max_pulses: int) -> tuple[Tensor, Tensor]:
    """The mean conductance that program-and-verify ends at for each aim of its window, measured.

    A SET-only device climbs into the verify window from below and is accepted by a noisy read, so
    a window centred on the target stops on average below it (``pcm-nandakumar2018`` at a 0.5 µS
    window: −0.11 µS over targets of 1–9.6 µS, −0.21 µS above 6 µS), and near one SET step above
    the RESET level the mean is a mixture of "stayed" and "jumped". This runs the loop once per
    model, window and budget with the model's own physics on a grid of aims over
    ``[g_min − tol, g_max]`` (:data:`VERIFY_CALIBRATION`) and returns ``(mean_us, aim_us)``, the
    means made non-decreasing (a running maximum). The result is kept in memory and on disk
    (:func:`verify_cache_dir`; the same numbers as computing it, bit for bit); computing it logs one
    line with its duration.
    """
    key = (type(model), model.params, float(tolerance_us), int(max_pulses))
    hit = _RESPONSES.get(key)
    if hit is not None:
        return hit
    folder = verify_cache_dir()
    path = folder / f"{model.name}-{_cache_key(model, tolerance_us, max_pulses)}.pt" if folder is not None else None
    cached = _load_cached(path) if path is not None and path.is_file() else None
    if cached is None:
        t0 = time.perf_counter()
        cached = _measure_response(model, tolerance_us, max_pulses)
        _LOG.info("program-and-verify calibration of %s (window ±%g µS, ≤ %d pulses): %.1f s%s", model.name,
                  tolerance_us, max_pulses, time.perf_counter() - t0, f", cached in {path}" if path else "")
        if path is not None:
            _store(path, *cached)
    _RESPONSES[key] = cached
    return cached


def _measure_response(model: DeviceModel, tolerance_us: float, max_pulses: int) -> tuple[Tensor, Tensor]:
    cal = VERIFY_CALIBRATION
    aims = torch.linspace(model.g_min_us - tolerance_us, model.g_max_us, cal["aims"])
    m = cal["devices"]
    gen = torch.Generator().manual_seed(cal["seed"])
    state = model.init_state((aims.numel() * m,), generator=gen)
    _verify_loop(model, state, aims.repeat_interleave(m), 0.0, gen, tolerance_us, max_pulses)
    means = model.drifted(state, 0.0).view(-1, m).double().mean(1).cummax(0).values.float()
    return means, aims


def centred_aim(model: DeviceModel, target_us: Tensor, tolerance_us: float, max_pulses: int) -> Tensor:
    """The aim whose measured mean outcome is ``target`` (:func:`verify_response`, linear between
    grid points; targets outside the reachable means get the nearest end's aim)."""
    means, aims = verify_response(model, tolerance_us, max_pulses)
    mu, a = means.to(target_us.device), aims.to(target_us.device)
    x = target_us.clamp(float(mu[0]), float(mu[-1]))
    i = torch.searchsorted(mu, x, right=True).clamp(1, mu.numel() - 1)
    span = mu[i] - mu[i - 1]
    w = torch.where(span > 0, (x - mu[i - 1]) / span.clamp(min=1e-12), torch.zeros_like(x))
    return a[i - 1] + w * (a[i] - a[i - 1])


def program_and_verify(
    model: DeviceModel, state: DeviceState, target_us: Tensor, t_s: float, generator: torch.Generator | None,
    *, tolerance_us: float, max_pulses: int, centred: bool = True,
) -> ProgramReport:
    """Program-and-verify for SET-only devices (depression only by RESET), vectorised over devices.

    RESET every device, read it (with read noise) and then, round by round until the device is
    accepted or its budget of ``max_pulses`` pulses (the first RESET included) is spent:

    - accepted when the verify read lies in ``[aim − tolerance, aim + tolerance]``;
    - below the window: one SET pulse;
    - above it (overshoot; a SET-only device cannot come down): RESET, and climb again.

    With ``centred`` (the default) the window is centred on the aim whose mean outcome is the target
    (:func:`centred_aim`), so that the programmed conductances are unbiased on average; without,
    ``aim = target`` and the loop stops on average below its target. The report's errors and
    ``converged`` are against the target itself.

    Every pulse and read happens at ``t_s`` (programming is instantaneous on the simulated clock);
    each round is the model's :meth:`DeviceModel.verify_round`. The loop runs over
    pulse rounds only. It works on the devices still active, gathered into a compact state that
    is re-compacted whenever half of it has finished, so late rounds with few active devices are
    cheap; the comparisons of a round's read with the window are made once and serve both the
    acceptance and the next round's choice of SET or RESET. Random draws come from ``generator``
    in a fixed order, so the outcome repeats bit for bit.
    """
    if not (isinstance(tolerance_us, (int, float)) and math.isfinite(tolerance_us) and tolerance_us >= 0):
        raise DeviceParameterError(f"tolerance_us={tolerance_us!r} is invalid: expected a finite number ≥ 0")
    check_int("max_pulses", max_pulses, 1)
    shape = state.shape
    dev = state.device
    tgt = torch.as_tensor(target_us, dtype=torch.float32, device=dev).expand(shape).reshape(-1)
    if not bool(torch.isfinite(tgt).all()):
        raise ValueError("program: target_us has NaN or infinite entries: expected finite conductances in µS")
    aim = centred_aim(model, tgt, tolerance_us, max_pulses) if centred else tgt
    pulses, verified = _verify_loop(model, state, aim, t_s, generator, tolerance_us, max_pulses)
    err = model.drifted(state, t_s) - tgt.view(shape)
    return ProgramReport(
        pulses=pulses.view(shape), error_us=err, converged=err.abs() <= tolerance_us, verified=verified.view(shape)
    )


def _verify_loop(model: DeviceModel, state: DeviceState, tgt: Tensor, t_s: float, generator: torch.Generator | None,
                 tolerance_us: float, max_pulses: int) -> tuple[Tensor, Tensor]:
    """The rounds of :func:`program_and_verify` with the window centred on ``tgt`` (flat, the
    state's device); returns the pulses and the verified flags, flat."""
    shape = state.shape
    dev = state.device
    flat = DeviceState(**{f: getattr(state, f).reshape(-1) for f in DeviceState.FIELDS})
    n = tgt.numel()
    pulses = torch.ones(n, dtype=torch.int32, device=dev)
    verified = torch.zeros(n, dtype=torch.bool, device=dev)
    lo = tgt - tolerance_us
    hi = tgt + tolerance_us

    model.reset(flat, torch.ones(n, dtype=torch.bool, device=dev), t_s, generator)
    r = model.verify_read(flat, t_s, generator)
    outside = (r < lo).logical_or_(r > hi)
    verified |= ~outside
    idx = outside.nonzero().squeeze(1)  # flat indices of the work devices
    work = flat.index(idx)
    above = r[idx] > hi[idx]  # of the last read, per work device
    w_lo, w_hi = lo[idx], hi[idx]
    live = torch.ones(idx.numel(), dtype=torch.bool, device=dev)
    w_pulses = torch.ones(idx.numel(), dtype=torch.int32, device=dev)
    n_live = idx.numel()
    used = 1

    def write_back(sel: Tensor) -> None:
        """Copy the work devices at positions ``sel`` back into the population."""
        f_idx = idx[sel]
        for f in DeviceState.FIELDS:
            getattr(flat, f).index_copy_(0, f_idx, getattr(work, f)[sel])
        pulses.index_copy_(0, f_idx, w_pulses[sel])

    while n_live > 0 and used < max_pulses:
        over = above.logical_and_(live)  # overshoot: a SET-only device must RESET
        n_over = int(torch.count_nonzero(over))
        under = live ^ over if n_over else live  # a live device read outside the window, not above it
        used += 1
        w_pulses.masked_fill_(live, used)
        w_r = model.verify_round(work, over, n_over, under, n_live - n_over, t_s, generator)
        above = w_r > w_hi
        live.logical_and_((w_r < w_lo).logical_or_(above))  # accepted devices leave
        n_live = int(torch.count_nonzero(live))
        if 0 < n_live * 2 <= live.numel():  # compact: finished devices go home
            done = (~live).nonzero().squeeze(1)
            verified.index_fill_(0, idx[done], True)
            write_back(done)
            keep = live.nonzero().squeeze(1)
            idx, work = idx[keep], work.index(keep)
            above, w_lo, w_hi, w_pulses = above[keep], w_lo[keep], w_hi[keep], w_pulses[keep]
            live = torch.ones(keep.numel(), dtype=torch.bool, device=dev)
    if idx.numel() > 0:
        verified.index_fill_(0, idx[~live], True)
        write_back(torch.arange(idx.numel(), device=dev))
    for f in DeviceState.FIELDS:  # non-contiguous state: reshape(-1) made a copy
        dst = getattr(state, f)
        src = getattr(flat, f)
        if src.data_ptr() != dst.data_ptr() or not dst.is_contiguous():
            dst.copy_(src.view(shape))
    return pulses, verified


class PulseLevelDevice(DeviceModel):
    """A device programmed by pulses: :meth:`program` is program-and-verify
    (:func:`program_and_verify`) with the model's own ``program_tolerance_us`` and
    ``program_max_pulses`` (fields of its Params) unless the call gives others."""

    def program(
        self, state: DeviceState, target_us: Tensor, t_s: float, generator: torch.Generator | None, *,
        tolerance_us: float | None = None, max_pulses: int | None = None,
    ) -> ProgramReport:
        """RESET, then SET pulses with a noisy verify read after each until the read is within
        ``tolerance_us`` of the target; an overshoot RESETs and climbs again while the budget lasts."""
        p = self.params
        return program_and_verify(
            self, state, target_us, t_s, generator,
            tolerance_us=p.program_tolerance_us if tolerance_us is None else tolerance_us,
            max_pulses=p.program_max_pulses if max_pulses is None else max_pulses,
        )
