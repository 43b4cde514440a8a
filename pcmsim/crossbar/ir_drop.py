"""IR drop: the currents of a crossbar tile whose wires have resistance.

The circuit (one tile; every resistance in ohms, conductance in siemens, voltage in volts):

- row ``i`` is driven by an ideal voltage source ``v_i`` at its left end, before column 0;
- column ``j`` is held at virtual ground (the sense amplifier) at its bottom end, after the last
  row;
- every wire segment has the same resistance ``r_wire``: driver → first cell, cell → cell along a
  row, cell → cell along a column, last cell → sense amplifier;
- cell ``(i, j)`` joins row node ``(i, j)`` to column node ``(i, j)`` through its conductance
  ``g_ij`` in series with the access device's resistance ``r_access``.

The network is linear, so the column currents are ``I = vᵀ·M`` for one ``R × C`` transfer matrix
``M`` (siemens) that depends on the conductances only, and the currents drawn from the sources are
``Y·v`` with the ``R × R`` input admittance ``Y``. :func:`transfer_exact` forms both from one
sparse LU factorisation of the nodal equations (``2·R·C`` unknowns; the crossbar solves once per
read of the devices and reuses ``M`` for every input vector); :func:`transfer_first_order` is the
fast approximation, first order in ``r_wire`` along the rows and the columns, in torch (any
device, batched over tiles). Without wire resistance both give ``M = g_cell``, ``Y = diag(Σ_j g_cell)``
(the ideal product).

``lead_segments`` and ``tail_segments`` generalise the two end segments (default 1, the
convention above): a weight block in the top rows of a larger physical tile reaches the sense
amplifiers through ``tile_rows − rows + 1`` column segments (``tail_segments``), and the
transposed read drives the columns from their bottom ends (``lead_segments``). Cells to the right
of the last used column carry no current and are left out exactly.

:func:`column_currents` is the pure function of the exact solve (numpy or torch in, the same
type out). The circuit is CrossSim's resistive-network model of a tile with parasitic wire
resistance (Sandia's CrossSim, ``simulator/circuits/array_simulator.py``), solved here by a direct
sparse factorisation instead of its fixed-point iteration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np
import torch
from torch import Tensor

from .tiles import TileLayout

ArrayLike = TypeVar("ArrayLike", np.ndarray, Tensor)

IRDropMode = Literal["off", "exact", "first-order"]


def cell_conductance_s(g_s: ArrayLike, r_access_ohm: float) -> ArrayLike:
    """A device in series with its access resistance: ``1 / (1/g + r_access)`` (0 stays 0), S."""
    if r_access_ohm == 0.0:
        return g_s
    return g_s / (1.0 + g_s * r_access_ohm)


def _check(g: np.ndarray | Tensor, r_wire_ohm: float, r_access_ohm: float, lead: int, tail: int) -> None:
    if g.ndim < 2:
        raise ValueError(f"g_s of shape {tuple(g.shape)} is invalid: expected [..., rows, columns]")
    if not (r_wire_ohm > 0 and np.isfinite(r_wire_ohm)):
        raise ValueError(f"r_wire_ohm={r_wire_ohm!r} is invalid: expected a finite resistance > 0 Ω "
                         "(without wire resistance there is no IR drop: use the ideal product)")
    if not (r_access_ohm >= 0 and np.isfinite(r_access_ohm)):
        raise ValueError(f"r_access_ohm={r_access_ohm!r} is invalid: expected a finite resistance ≥ 0 Ω")
    for name, v in (("lead_segments", lead), ("tail_segments", tail)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}={v!r} is invalid: expected an integer ≥ 1")


def _nodal_matrix(gc: np.ndarray, r_wire_ohm: float, lead: int, tail: int) -> Any:
    """The nodal conductance matrix (SPD) of one tile: unknowns ``u_ij`` (row nodes, index
    ``i·C + j``) then ``w_ij`` (column nodes, ``R·C + i·C + j``); a ``scipy.sparse.csc_matrix``."""
    import scipy.sparse as sp  # (only the exact mode needs scipy)

    r, c = gc.shape
    n = r * c
    gw = 1.0 / r_wire_ohm
    idx = np.arange(n).reshape(r, c)
    gcf = gc.reshape(-1)
    # row nodes: left segment (lead segments at j = 0), right segment where j < C − 1, the cell
    d_row = np.full((r, c), 2 * gw)
    d_row[:, 0] = gw + gw / lead
    d_row[:, -1] -= gw
    if c == 1:
        d_row[:, 0] = gw / lead
    # column nodes: upper segment where i > 0, lower segment (tail segments at i = R − 1), the cell
    d_col = np.full((r, c), 2 * gw)
    d_col[0, :] -= gw
    d_col[-1, :] += gw / tail - gw
    diag = np.concatenate([d_row.reshape(-1) + gcf, d_col.reshape(-1) + gcf])
    rows = [np.arange(2 * n)]
    cols = [np.arange(2 * n)]
    vals = [diag]
    a, b = idx[:, :-1].reshape(-1), idx[:, 1:].reshape(-1)  # along the rows
    rows += [a, b]
    cols += [b, a]
    vals += [np.full(a.size, -gw)] * 2
    a, b = n + idx[:-1, :].reshape(-1), n + idx[1:, :].reshape(-1)  # along the columns
    rows += [a, b]
    cols += [b, a]
    vals += [np.full(a.size, -gw)] * 2
    a, b = np.arange(n), n + np.arange(n)  # the cells
    rows += [a, b]
    cols += [b, a]
    vals += [-gcf, -gcf]
    return sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(2 * n, 2 * n))


def _solve_tile(
    gc: np.ndarray, v: np.ndarray, r_wire_ohm: float, lead: int, tail: int
) -> tuple[np.ndarray, np.ndarray]:
    """Column currents ``[B, C]`` and source currents ``[B, R]`` of one tile (``gc`` ``[R, C]``,
    S; ``v`` ``[B, R]``, V), float64."""
    import scipy.sparse.linalg as spla

    r, c = gc.shape
    n = r * c
    g_lead, g_tail = 1.0 / (lead * r_wire_ohm), 1.0 / (tail * r_wire_ohm)
    lu = spla.splu(_nodal_matrix(gc, r_wire_ohm, lead, tail), permc_spec="MMD_AT_PLUS_A")
    rhs = np.zeros((2 * n, v.shape[0]))
    rhs[np.arange(r) * c, :] = g_lead * v.T
    x = lu.solve(rhs)
    i_col = g_tail * x[n + (r - 1) * c : 2 * n, :].T
    i_src = g_lead * (v - x[np.arange(r) * c, :].T)
    return i_col, i_src


def transfer_exact(
    g_s: np.ndarray, r_wire_ohm: float, r_access_ohm: float = 0.0, *, lead_segments: int = 1, tail_segments: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """The exact transfer matrix ``M`` ``[..., R, C]`` (column currents ``I = vᵀM``) and input
    admittance ``Y`` ``[..., R, R]`` (source currents ``Y·v``) of tiles ``g_s`` ``[..., R, C]``
    (device conductances, S), float64 numpy; one sparse LU factorisation per tile."""
    g = np.asarray(g_s, dtype=np.float64)
    _check(g, r_wire_ohm, r_access_ohm, lead_segments, tail_segments)
    lead_shape, (r, c) = g.shape[:-2], g.shape[-2:]
    flat = cell_conductance_s(g.reshape(-1, r, c), r_access_ohm)
    m = np.empty(flat.shape)
    y = np.empty((flat.shape[0], r, r))
    eye = np.eye(r)
    for k in range(flat.shape[0]):  # one factorisation per tile
        i_col, i_src = _solve_tile(flat[k], eye, r_wire_ohm, lead_segments, tail_segments)
        m[k], y[k] = i_col, i_src.T  # unit voltage on row b: row b of M, column b of Y
    return m.reshape(*lead_shape, r, c), y.reshape(*lead_shape, r, r)


def _as_numpy(a: np.ndarray | Tensor) -> np.ndarray:
    return a.detach().to("cpu", torch.float64).numpy() if isinstance(a, Tensor) else np.asarray(a, dtype=np.float64)


def column_currents(
    g_s: ArrayLike,
    v_row_v: ArrayLike,
    r_wire_ohm: float,
    r_access_ohm: float = 0.0,
    *,
    lead_segments: int = 1,
    tail_segments: int = 1,
) -> ArrayLike:
    """The column currents (A) of tiles with wire resistance, solved exactly (module docstring).

    Args:
        g_s: device conductances ``[..., R, C]`` (S), numpy or torch.
        v_row_v: row voltages ``[..., R]`` or a batch ``[..., B, R]`` (V); the leading dims are
            ``g_s``'s.
        r_wire_ohm: the resistance of every wire segment (Ω, > 0).
        r_access_ohm: the access device's series resistance per cell (Ω, ≥ 0).
        lead_segments, tail_segments: segments from the driver to the first cell and from the
            last cell to the sense amplifier (1: the convention of the module docstring).

    Returns:
        ``[..., C]`` (or ``[..., B, C]``), the type (and for torch the dtype and device) of ``g_s``.
    """
    g, v = _as_numpy(g_s), _as_numpy(v_row_v)
    _check(g, r_wire_ohm, r_access_ohm, lead_segments, tail_segments)
    lead_shape, (r, c) = g.shape[:-2], g.shape[-2:]
    nl = len(lead_shape)
    if v.shape[:nl] != lead_shape or v.shape[-1] != r or v.ndim not in (nl + 1, nl + 2):
        raise ValueError(f"v_row_v of shape {v.shape} is invalid: expected [{', '.join(map(str, lead_shape + (r,)))}]"
                         f" or a batch [..., B, {r}] for g_s of shape {g.shape}")
    single = v.ndim == nl + 1
    vb = v.reshape(-1, 1, r) if single else v.reshape(int(np.prod(lead_shape, dtype=np.int64)), -1, r)
    flat = cell_conductance_s(g.reshape(-1, r, c), r_access_ohm)
    out = np.stack([_solve_tile(flat[k], vb[k], r_wire_ohm, lead_segments, tail_segments)[0]
                    for k in range(flat.shape[0])])
    out = out.reshape(*lead_shape, c) if single else out.reshape(*v.shape[:-1], c)
    if isinstance(g_s, Tensor):
        return torch.from_numpy(out).to(device=g_s.device, dtype=g_s.dtype)
    return out


def transfer_first_order(
    g_s: Tensor, r_wire_ohm: float, r_access_ohm: float = 0.0, *, lead_segments: int = 1, tail_segments: int = 1
) -> tuple[Tensor, Tensor]:
    """``M`` and ``Y`` (as :func:`transfer_exact`) to first order in ``r_wire``, in torch, batched
    over the leading dims of ``g_s`` ``[..., R, C]`` (S). Each segment's drop is formed from the
    ideal cell currents: along a row, the segment before cell ``k`` carries ``Σ_{n≥k} g_in v_i``;
    along a column, the segment below row ``k`` carries ``Σ_{m≤k} g_mj v_m``; the cell current is
    ``g_ij (u_ij − w_ij)``. Error against the exact solve: ``docs/ir-drop.md``."""
    _check(g_s, r_wire_ohm, r_access_ohm, lead_segments, tail_segments)
    g = cell_conductance_s(g_s, r_access_ohm)
    r, c = g.shape[-2:]
    rw = float(r_wire_ohm)
    # rows: A[m, j] = Σ_n g[m, n]·(min(j, n) + lead), the row-wire resistance shared by cells j and n
    n_idx = torch.arange(c, dtype=g.dtype, device=g.device)
    cs = g.cumsum(-1)
    a = (g * (n_idx + lead_segments)).cumsum(-1) + (n_idx + lead_segments) * (cs[..., -1:] - cs)
    # columns: B[m, j] = Σ_i g[i, j]·(R − 1 + tail − max(i, m)), the column-wire resistance shared
    i_idx = torch.arange(r, dtype=g.dtype, device=g.device).unsqueeze(-1)
    h = r - 1 + tail_segments - i_idx  # [R, 1]
    csr = g.cumsum(-2)
    gh = (g * h).cumsum(-2)
    b = h * csr + (gh[..., -1:, :] - gh)
    m = g * (1.0 - rw * (a + b))
    # sources: the row term on the diagonal, the shared column wire between rows i and m
    hh = torch.minimum(h, h.transpose(-1, -2))  # R − 1 + tail − max(i, m)
    y = torch.diag_embed((g * (1.0 - rw * a)).sum(-1)) - rw * hh * (g @ g.transpose(-1, -2))
    return m, y


@dataclass(frozen=True)
class IRDrop:
    """IR drop in a crossbar's reads: the effective tiles of a device array.

    A tile of ``tile_in`` unit-cell rows × ``tile_out`` unit-cell columns is a physical array of
    ``tile_in`` rows × ``2N·tile_out`` device columns, the devices of output ``o`` side by side
    in the order ``(o, pair k, sign)`` (G⁺_k, G⁻_k); the periphery forms ``Σ_k c_k (I⁺_k − I⁻_k)``
    from the column currents. The weight block sits in the top rows of a physical tile of
    ``tile_rows`` rows: below a block of fewer rows (a matrix smaller than one tile) the columns
    run ``tile_rows − tile_in`` empty cells further to their sense amplifiers. Each tile along
    the outputs has its own row drivers (:mod:`pcmsim.crossbar.tiles`).

    The transposed read drives the device columns from their bottom ends (column ``(o, k, s)``
    at ``c_k·(±1)·d_o``) and senses the rows at their left ends.

    Attributes:
        mode: ``"exact"`` (:func:`transfer_exact`) or ``"first-order"`` (:func:`transfer_first_order`).
        wire_ohm: resistance of one wire segment, Ω.
        access_ohm: series resistance of a cell's access device, Ω.
        tile_rows: rows of the physical tile.
    """

    mode: Literal["exact", "first-order"]
    wire_ohm: float
    access_ohm: float
    tile_rows: int

    def _transfer(self, g_s: Tensor, *, lead: int, tail: int) -> tuple[Tensor, Tensor]:
        if self.mode == "exact":
            m, y = transfer_exact(_as_numpy(g_s), self.wire_ohm, self.access_ohm, lead_segments=lead,
                                  tail_segments=tail)
            return torch.from_numpy(m).to(g_s.device), torch.from_numpy(y).to(g_s.device)
        return transfer_first_order(g_s.to(torch.float64), self.wire_ohm, self.access_ohm, lead_segments=lead,
                                    tail_segments=tail)

    @staticmethod
    def _physical(g_us: Tensor, tiles: TileLayout) -> Tensor:
        """``[N, 2, out, in]`` µS → physical tiles ``[n_ti·n_to, tile_in, tile_out·2N]`` in S (float64)."""
        n = g_us.shape[0]
        gt = tiles.to_tiles(g_us.to(torch.float64))  # [N, 2, n_ti, tile_in, out_p]
        gt = gt.view(n, 2, tiles.n_tiles_in, tiles.tile_in, tiles.n_tiles_out, tiles.tile_out)
        gt = gt.permute(2, 4, 3, 5, 0, 1)  # [n_ti, n_to, tile_in, tile_out, N, 2]
        return gt.reshape(tiles.n_tiles_in * tiles.n_tiles_out, tiles.tile_in, tiles.tile_out * 2 * n) * 1e-6

    def forward_tiles(self, g_us: Tensor, c: Tensor, tiles: TileLayout) -> tuple[Tensor, Tensor]:
        """The effective tiles ``Σ_k c_k (M⁺_k − M⁻_k)`` ``[n_ti, tile_in, out_padded]`` and the
        input admittance summed over the output tiles ``[n_ti, tile_in, tile_in]`` (µS, float32) of
        the devices ``g_us`` ``[N, 2, out, in]`` (µS) as laid out in ``tiles``."""
        n, n_ti, n_to = g_us.shape[0], tiles.n_tiles_in, tiles.n_tiles_out
        m, y = self._transfer(self._physical(g_us, tiles), lead=1, tail=self.tile_rows - tiles.tile_in + 1)
        m = m.view(n_ti, n_to, tiles.tile_in, tiles.tile_out, n, 2)
        m = ((m[..., 0] - m[..., 1]) * c.to(m)).sum(-1)  # [n_ti, n_to, tile_in, tile_out]
        m = m.permute(0, 2, 1, 3).reshape(n_ti, tiles.tile_in, tiles.out_padded)
        y = y.view(n_ti, n_to, tiles.tile_in, tiles.tile_in).sum(1)
        return (m * 1e6).to(torch.float32), (y * 1e6).to(torch.float32)

    def transposed_tiles(self, g_us: Tensor, c: Tensor, tiles: TileLayout) -> tuple[Tensor, Tensor]:
        """The transposed read's effective tiles ``[n_to, tile_out, n_ti·tile_in]`` and the
        admittance of the driven outputs ``[n_to, tile_out, tile_out]`` (µS, float32), for the
        forward layout ``tiles`` (the transposed layout is ``TileLayout.of(in, out, tile_cols,
        tile_rows)``). The admittance is reduced as the read's energy needs it: ``Pᵀ·Y·S`` with
        ``P`` the drive ``c_k·(±1)`` and ``S`` its sign pattern ``±1``."""
        n, n_ti, n_to = g_us.shape[0], tiles.n_tiles_in, tiles.n_tiles_out
        g = self._physical(g_us, tiles).transpose(-1, -2).flip(-1, -2)  # driven lines first
        m, y = self._transfer(g, lead=self.tile_rows - tiles.tile_in + 1, tail=1)
        m, y = m.flip(-1, -2), y.flip(-1, -2)  # [tiles, tile_out·2N, tile_in], [tiles, cols, cols]
        sgn = torch.tensor([1.0, -1.0], dtype=m.dtype, device=m.device)
        drive = (c.to(m).view(n, 1) * sgn).reshape(-1)  # c_k·(±1) over (k, s)
        sign = sgn.repeat(n)
        t_out = tiles.tile_out
        m = (m.view(n_ti, n_to, t_out, 2 * n, tiles.tile_in) * drive.view(2 * n, 1)).sum(-2)
        m = m.permute(1, 2, 0, 3).reshape(n_to, t_out, n_ti * tiles.tile_in)
        y = y.view(n_ti, n_to, t_out, 2 * n, t_out, 2 * n)
        y = torch.einsum("abpkql,k,l->bpq", y, drive, sign)
        return (m * 1e6).to(torch.float32), (y * 1e6).to(torch.float32)

    @classmethod
    def of(cls, mode: IRDropMode, wire_ohm: float, access_ohm: float, tile_rows: int) -> IRDrop | None:
        """The IR drop of a crossbar configuration; None where ``mode == "off"``."""
        if mode == "off":
            return None
        return cls(mode=mode, wire_ohm=float(wire_ohm), access_ohm=float(access_ohm), tile_rows=int(tile_rows))
