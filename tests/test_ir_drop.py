"""IR drop: the exact tile solve against an independent netlist solve, physical limits, the
first-order mode, and the crossbar's switch."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

from pcmsim.crossbar import Crossbar, CrossbarConfig
from pcmsim.crossbar.ir_drop import column_currents, transfer_exact, transfer_first_order
from pcmsim.periphery import PeripheryConfig


def netlist_solve(g_s: np.ndarray, v: np.ndarray, r_wire: float, r_access: float, *,
                  transposed: bool = False, far_segments: int = 1, sources: bool = False) -> np.ndarray:
    """An independent modified-nodal-analysis solve of a tile, written from a netlist.

    Every element is a two-terminal resistor between named nodes (``"gnd"`` is ground); a source is
    a resistor to a node held at a fixed voltage, eliminated into the right-hand side; the cell's
    access resistance is its own resistor to an internal node. Forward: row ``i`` is driven at its
    left end, column ``j`` sensed at its bottom end; ``transposed``: column ``j`` is driven at its
    bottom end with ``v[j]`` and row ``i`` sensed at its left end. ``far_segments``: segments
    between the last row and the column's bottom end (a block in the top rows of a taller tile).
    Returns the sensed currents (``sources``: the currents the sources give).
    """
    r, c = g_s.shape
    elems: list[tuple[str, str, float]] = []  # (node a, node b, conductance)
    for i in range(r):
        for j in range(c):
            if j + 1 < c:
                elems.append((f"r{i},{j}", f"r{i},{j + 1}", 1 / r_wire))
            if i + 1 < r:
                elems.append((f"c{i},{j}", f"c{i + 1},{j}", 1 / r_wire))
            if g_s[i, j] > 0:
                if r_access > 0:
                    elems.append((f"r{i},{j}", f"a{i},{j}", 1 / r_access))
                    elems.append((f"a{i},{j}", f"c{i},{j}", g_s[i, j]))
                else:
                    elems.append((f"r{i},{j}", f"c{i},{j}", g_s[i, j]))
    fixed: dict[str, float] = {}
    if not transposed:
        for i in range(r):
            fixed[f"src{i}"] = v[i]
            elems.append((f"src{i}", f"r{i},0", 1 / r_wire))
        for j in range(c):
            fixed[f"sa{j}"] = 0.0
            elems.append((f"c{r - 1},{j}", f"sa{j}", 1 / (far_segments * r_wire)))
    else:
        for j in range(c):
            fixed[f"src{j}"] = v[j]
            elems.append((f"src{j}", f"c{r - 1},{j}", 1 / (far_segments * r_wire)))
        for i in range(r):
            fixed[f"sa{i}"] = 0.0
            elems.append((f"r{i},0", f"sa{i}", 1 / r_wire))
    names = sorted({n for a, b, _ in elems for n in (a, b)} - set(fixed))
    at = {n: k for k, n in enumerate(names)}
    mat = sp.lil_matrix((len(names), len(names)))
    rhs = np.zeros(len(names))
    for a, b, g in elems:
        for p, q in ((a, b), (b, a)):
            if p in at:
                mat[at[p], at[p]] += g
                if q in at:
                    mat[at[p], at[q]] -= g
                else:
                    rhs[at[p]] += g * fixed[q]
    x = spla.spsolve(mat.tocsr(), rhs)
    if sources and not transposed:
        return np.array([(v[i] - x[at[f"r{i},0"]]) / r_wire for i in range(r)])
    if not transposed:
        return np.array([x[at[f"c{r - 1},{j}"]] / (far_segments * r_wire) for j in range(c)])
    return np.array([x[at[f"r{i},0"]] / r_wire for i in range(r)])


def _tile(r: int, c: int, seed: int, g_max_s: float = 25e-6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    g = rng.uniform(0.0, g_max_s, size=(r, c))
    g[rng.random((r, c)) < 0.2] = 0.0  # some cells RESET to nothing
    return g


@pytest.mark.parametrize("r, c, r_wire, r_access", [(5, 7, 2.0, 0.0), (8, 6, 50.0, 5e3), (1, 4, 10.0, 0.0),
                                                     (6, 1, 10.0, 1e3), (12, 9, 400.0, 2e4)])
def test_exact_against_independent_netlist(r: int, c: int, r_wire: float, r_access: float) -> None:
    g = _tile(r, c, seed=r * 100 + c)
    v = np.random.default_rng(7).uniform(-0.2, 0.2, size=(3, r))
    got = column_currents(g, v, r_wire, r_access)
    want = np.stack([netlist_solve(g, vb, r_wire, r_access) for vb in v])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-12 * np.abs(want).max())
    # the loss is real at these resistances (the check is not vacuous)
    ideal = v @ (g / (1 + g * r_access))
    assert np.abs(got - ideal).max() > 1e-4 * np.abs(ideal).max()


def test_transfer_matrix_is_the_solve_and_y_is_the_source_current() -> None:
    g = _tile(6, 5, seed=3)
    m, y = transfer_exact(g, 30.0, 1e3)
    v = np.random.default_rng(1).uniform(0, 0.2, size=(4, 6))
    np.testing.assert_allclose(v @ m, column_currents(g, v, 30.0, 1e3), rtol=1e-9)
    np.testing.assert_allclose(y, y.T, rtol=1e-9, atol=1e-18)  # a reciprocal network
    # Kirchhoff: what the sources give, the sense amplifiers take
    np.testing.assert_allclose((v @ y).sum(-1), (v @ m).sum(-1), rtol=1e-9)


def test_transposed_read_is_the_same_function_on_the_rotated_tile() -> None:
    """Driving the columns from their bottom ends and sensing the rows at their left ends is the
    forward convention on ``rot180(gᵀ)``."""
    g = _tile(7, 5, seed=11)
    d = np.random.default_rng(2).uniform(-0.2, 0.2, size=5)
    want = netlist_solve(g, d, 25.0, 2e3, transposed=True)
    got = column_currents(g.T[::-1, ::-1].copy(), d[::-1].copy(), 25.0, 2e3)[::-1]
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_no_wire_resistance_is_the_ideal_product_and_loss_grows_with_it() -> None:
    g = _tile(16, 16, seed=5)
    v = np.full(16, 0.2)
    ideal = v @ g
    np.testing.assert_allclose(column_currents(g, v, 1e-6), ideal, rtol=1e-6)
    totals = [column_currents(g, v, rw).sum() for rw in (1e-3, 1.0, 10.0, 100.0, 1000.0)]
    assert all(a > b for a, b in zip(totals, totals[1:], strict=False))
    assert totals[0] < ideal.sum()
    # every column loses current when all inputs are positive
    assert np.all(column_currents(g, v, 100.0) <= ideal + 1e-15)


def test_torch_in_torch_out_and_batched_tiles() -> None:
    g = torch.from_numpy(np.stack([_tile(4, 3, 1), _tile(4, 3, 2)])).to(torch.float32)
    v = torch.rand(2, 5, 4, generator=torch.Generator().manual_seed(0)) * 0.2
    out = column_currents(g, v, 20.0)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (2, 5, 3)
    for k in range(2):
        want = np.stack([netlist_solve(g[k].double().numpy(), vb, 20.0, 0.0) for vb in v[k].double().numpy()])
        np.testing.assert_allclose(out[k].double().numpy(), want, rtol=1e-5)
    with pytest.raises(ValueError, match="r_wire_ohm"):
        column_currents(g, v, 0.0)
    with pytest.raises(ValueError, match="v_row_v"):
        column_currents(g, v[:, :, :3], 1.0)


def test_first_order_error_is_second_order_in_the_wire_resistance() -> None:
    """The first-order mode's error against the exact solve falls as ``r_wire²`` (×100 per decade)
    and is far below the loss it corrects."""
    g = _tile(32, 64, seed=9)
    errs = []
    for r_wire in (0.35, 3.5):
        m_exact, y_exact = transfer_exact(g, r_wire, 1e3, tail_segments=3)
        m1, y1 = transfer_first_order(torch.from_numpy(g), r_wire, 1e3, tail_segments=3)
        loss = np.abs(m_exact - g / (1 + 1e3 * g)).max()
        err_m, err_y = np.abs(m1.numpy() - m_exact).max(), np.abs(y1.numpy() - y_exact).max()
        errs.append((err_m, err_y))
        assert err_m < 0.1 * loss
    assert 70 < errs[1][0] / errs[0][0] < 130
    assert 70 < errs[1][1] / errs[0][1] < 130


# ---- the crossbar's switch ---------------------------------------------------------------------
R_WIRE, R_ACCESS = 40.0, 2e3  # large enough for a drop of several per cent on these small tiles


def _crossbar(mode: str, out_f: int, in_f: int, tile_rows: int, tile_cols: int, n: int = 1) -> Crossbar:
    cfg = CrossbarConfig(devices_per_sign=n, significance="graded" if n > 1 else "equal", tile_rows=tile_rows,
                         tile_cols=tile_cols, periphery=PeripheryConfig.ideal(), read_noise=False, ir_drop=mode,
                         wire_ohm=R_WIRE, access_ohm=R_ACCESS)
    xb = Crossbar(out_f, in_f, "ideal", cfg, seed=0)
    xb.program_weights(torch.randn(out_f, in_f, generator=torch.Generator().manual_seed(3)), 0.0)
    return xb


def _physical_tile(xb: Crossbar, rows: slice, outs: slice) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """The device columns of a tile in the order (output, pair, sign) and what each column is."""
    g = xb.conductances(0.0).double().numpy() * 1e-6  # [N, 2, out, in], S
    cols, what = [], []
    for o in range(outs.start, outs.stop):
        for k in range(g.shape[0]):
            for s in (0, 1):
                cols.append(g[k, s, o, rows])
                what.append((o, k, s))
    return np.stack(cols, axis=1), what


@pytest.mark.parametrize("out_f, in_f, tile_rows, tile_cols, n", [(5, 6, 9, 8, 1), (7, 10, 4, 3, 1), (4, 5, 6, 4, 2)])
def test_crossbar_forward_read_is_the_netlist_per_tile(out_f: int, in_f: int, tile_rows: int, tile_cols: int,
                                                       n: int) -> None:
    xb = _crossbar("exact", out_f, in_f, tile_rows, tile_cols, n)
    x = torch.rand(3, in_f, generator=torch.Generator().manual_seed(4)) * 2 - 1
    c = xb.significances.double().numpy()
    want = np.zeros((3, out_f))
    for r0 in range(0, in_f, tile_rows):
        rows = slice(r0, min(in_f, r0 + tile_rows))
        far = tile_rows - (rows.stop - rows.start) + 1  # empty rows below a short block, then the amplifier
        for o0 in range(0, out_f, tile_cols):
            g, what = _physical_tile(xb, rows, slice(o0, min(out_f, o0 + tile_cols)))
            for b in range(3):
                i = netlist_solve(g, x[b, rows].double().numpy(), R_WIRE, R_ACCESS, far_segments=far)
                for col, (o, k, s) in enumerate(what):
                    want[b, o] += c[k] * (1 - 2 * s) * i[col] * 1e6
    want *= float(xb.w_per_us)
    got = xb.mvm(x, 0.0).double().numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    # and the drop is visible against the ideal product
    assert np.abs(got - (x @ xb.weights(0.0).T).double().numpy()).max() > 1e-3 * np.abs(want).max()


def test_crossbar_transposed_read_is_the_netlist() -> None:
    out_f, in_f, tile_rows = 4, 5, 7  # one tile, two empty rows below the block
    xb = _crossbar("exact", out_f, in_f, tile_rows, 8)
    d = torch.rand(2, out_f, generator=torch.Generator().manual_seed(5)) * 2 - 1
    g, what = _physical_tile(xb, slice(0, in_f), slice(0, out_f))
    want = np.zeros((2, in_f))
    for b in range(2):
        v = np.array([d[b, o].item() * (1 - 2 * s) for (o, _, s) in what])
        want[b] = netlist_solve(g, v, R_WIRE, R_ACCESS, transposed=True, far_segments=tile_rows - in_f + 1) * 1e6
    want *= float(xb.w_per_us)
    np.testing.assert_allclose(xb.mvm_transposed(d, 0.0).double().numpy(), want, rtol=1e-5,
                               atol=1e-6 * np.abs(want).max())


def test_crossbar_read_energy_is_the_solved_row_current() -> None:
    """With PWM inputs at one polarity, the energy count is Σ_j |x̂_j| · I_j / V with ``I_j`` row
    ``j``'s current when every row is driven: the solved current, less than ``G_row·V``."""
    xb = _crossbar("exact", 5, 6, 6, 5)
    x = torch.rand(4, 6, generator=torch.Generator().manual_seed(6))
    xb.mvm(x, 0.0)
    g, _ = _physical_tile(xb, slice(0, 6), slice(0, 5))
    i_src = netlist_solve(g, np.ones(6), R_WIRE, R_ACCESS, sources=True) * 1e6  # µS at 1 V
    want = float((x.double().numpy() * i_src).sum())
    assert float(xb.stats.array_gx_us) == pytest.approx(want, rel=1e-5)
    assert want < float((x.double().numpy() * (g / (1 + g * R_ACCESS)).sum(1) * 1e6).sum())


def test_crossbar_first_order_is_close_to_exact_and_off_is_ideal() -> None:
    x = torch.rand(8, 10, generator=torch.Generator().manual_seed(7))
    exact = _crossbar("exact", 7, 10, 16, 16).mvm(x, 0.0)
    first = _crossbar("first-order", 7, 10, 16, 16).mvm(x, 0.0)
    off = _crossbar("off", 7, 10, 16, 16)
    ideal = off.mvm(x, 0.0)
    torch.testing.assert_close(ideal, x @ off.weights(0.0).T, rtol=1e-5, atol=1e-5)
    loss = (exact - ideal).abs().max()
    assert (first - exact).abs().max() < 0.1 * loss


def test_ir_drop_config_is_validated() -> None:
    with pytest.raises(ValueError, match="exact_read_noise"):
        CrossbarConfig(ir_drop="exact", exact_read_noise=True)
    with pytest.raises(ValueError, match="wire_ohm"):
        CrossbarConfig.from_dict({"ir_drop": "exact", "wire_ohm": 0})
    with pytest.raises(ValueError, match="ir_drop"):
        CrossbarConfig.from_dict({"ir_drop": "sometimes"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("mode", ["exact", "first-order"])
def test_ir_drop_on_cuda_matches_the_cpu(mode: str) -> None:
    x = torch.rand(8, 10, generator=torch.Generator().manual_seed(7))
    cpu = _crossbar(mode, 7, 10, 16, 16)
    want = cpu.mvm(x, 0.0)
    gpu = _crossbar(mode, 7, 10, 16, 16).to("cuda")
    torch.testing.assert_close(gpu.mvm(x.cuda(), 0.0).cpu(), want, rtol=1e-4, atol=1e-5)
