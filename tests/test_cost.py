"""Energy, latency and area (issue 16): the counts the simulation gathers, the estimate from them,
the cost profile's checks, a resumed run's counts and ``pcmsim cost``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import interrupting_trainer

from hardware_in_loop.experiments import run_training
from hardware_in_loop.tasks import load_config
from hardware_in_loop.trainer import TrainingInterrupted
from pcmsim.cli import main
from pcmsim.cost import DEFAULT_PROFILE, estimate, get_profile, load_profile
from pcmsim.crossbar import Crossbar, CrossbarConfig
from pcmsim.typedconfig import ConfigError

REPO = Path(__file__).resolve().parents[1]
SPIKES = torch.tensor([[1.0, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]])  # 4 time steps × 3 inputs


def _ideal_2x3() -> Crossbar:
    """A 2×3 array of ideal devices holding G⁺ = [[1, 0, 3], [0, 4, 0]], G⁻ = [[0, 2, 0], [0, 0, 5]] µS."""
    xb = Crossbar(2, 3, "ideal", CrossbarConfig(weight_scale=0.1), seed=0)
    xb.program_weights(torch.tensor([[0.1, -0.2, 0.3], [0.0, 0.4, -0.5]]), 0.0)
    return xb


def _counts_of(xb: Crossbar, phase_stats: dict[str, Any], **run: Any) -> dict[str, Any]:
    layer = {"in": xb.in_features, "out": xb.out_features, "devices_per_sign": 1, "n_tiles_in": 1,
             "n_tiles_out": 1, "tile_in": xb.in_features, "tile_out": xb.out_features, "dac_bits": 7,
             "adc_bits": 9, "train": phase_stats, "eval": phase_stats}
    return {"layers": [layer], "batches": 1, "pulse_rounds": 3, "refresh_steps": 1, "pulses_set": 10,
            "pulses_reset": 2, "epochs": 1, "optimizer": "adam", **run}


def test_counts_and_energies_of_a_2x3_array_over_4_spike_steps_are_exact() -> None:
    xb = _ideal_2x3()
    assert torch.equal(xb.conductances(1.0)[0], torch.tensor([[[1.0, 0, 3], [0, 4, 0]], [[0, 2, 0], [0, 0, 5]]]))
    for x in SPIKES:  # one MVM per time step
        xb.mvm(x.unsqueeze(0), 1.0)
    s = xb.stats.as_dict()
    # rows draw G_row = (1, 2 + 4, 3 + 5) = (1, 6, 8) µS; spikes at full scale (x̂ = 1)
    assert s["mvm_calls"] == 4 and s["input_vectors"] == 4 and s["outputs"] == 4 * 2 and s["bm_rereads"] == 0
    assert s["dac_nonzero"] == 2 + 0 + 3 + 1
    assert s["array_gx_us"] == pytest.approx((1 + 8) + 0 + (1 + 6 + 8) + 6, abs=1e-9)  # 30 µS
    est = estimate(_counts_of(xb, s), DEFAULT_PROFILE)
    e = est["train"]["energy_j"]
    assert e["array"] == pytest.approx(0.2**2 * 128e-9 * 30e-6, rel=1e-12)  # V² · t · ΣG = 0.1536 pJ
    assert e["dac"] == pytest.approx(6 * 2e-15 * 2**7, rel=1e-12)  # 1.536 pJ
    assert e["adc"] == pytest.approx(8 * 23.6e-15 * 2**9, rel=1e-12)  # 96.6656 pJ
    # the scheme reported 10 pulses as SET (its 2 RESETs among them) and 2 RESETs: 8 SET pulses, 2 RESETs
    assert e["programming"] == pytest.approx(8 * 13.5e-12 + 2 * 19.2e-12, rel=1e-12)
    assert est["train"]["set_pulses"] == 8 and est["train"]["resets"] == 2
    # neurons: 2 outputs × 4 steps forward, 5 FLOPs each, and twice that backward, at (3.7 + 0.9)/2 pJ
    assert e["neurons"] == pytest.approx(3 * 5 * 8 * 2.3e-12, rel=1e-12)
    assert est["train"]["latency_s"]["analog_mvm"] == pytest.approx(4 * (128e-9 + 5e-9), rel=1e-12)
    assert est["train"]["latency_s"]["programming"] == pytest.approx(3 * 150e-9 + 1 * 40e-9, rel=1e-12)
    inf = est["inference"]
    assert inf["steps_measured"] == 4
    assert inf["energy_j_per_step"]["neurons"] == pytest.approx(2 * 5 * 2.3e-12, rel=1e-12)
    assert inf["energy_j_per_step_total"] == pytest.approx(
        (e["array"] + e["dac"] + e["adc"]) / 4 + 2 * 5 * 2.3e-12, rel=1e-12)
    # digital baseline: 6 weights; forward 2·6·4 FLOPs, backward twice that, Adam 10 per weight
    assert est["baseline"]["flops"] == {"forward": 48.0, "backward": 96.0, "optimiser": 60.0, "neurons": 120.0}
    assert est["area_mm2"]["devices"] == 12
    assert est["area_mm2"]["total"] == pytest.approx((12 * 0.405 + 2 * 2000 + 3 * 200) * 1e-6, rel=1e-12)
    assert est["excluded"] and any("leakage" in x for x in est["excluded"])


def test_initial_programming_refresh_reads_and_layer_programming_are_exact() -> None:
    """Two layers; the first programmed with 30 pulses over 6 weight pairs (every device RESET
    once: 12 RESETs, 18 SET pulses; a read after each of the 24 loop pulses), the second built
    unprogrammed. During training 40 pulses on the first layer and 10 on the second; the scheme
    reported 50 pulses, 4 of them the RESETs of one refreshed pair (2 pairs × 2 devices)."""
    xb = _ideal_2x3()
    s = xb.stats.as_dict()
    first = {**_counts_of(xb, s)["layers"][0], "pulses": 40, "initial": {"pulses": 30, "weight_pairs": 6, "rounds": 7}}
    second = {**_counts_of(xb, s)["layers"][0], "pulses": 10, "initial": {"pulses": 0, "weight_pairs": 0, "rounds": 0}}
    counts = {**_counts_of(xb, s), "layers": [first, second], "pulses_set": 50, "pulses_reset": 4}
    est = estimate(counts, DEFAULT_PROFILE)
    a, b = est["layers"]
    conv = 23.6e-15 * 2**9  # one 9-bit conversion per verify read
    assert a["programming"] == pytest.approx({"pulses": 40, "set_pulses": 40 - 3.2, "resets": 3.2,
                                              "verify_reads": 2 * 0.8 * 4, "initial_set_pulses": 18,
                                              "initial_resets": 12, "initial_verify_reads": 24}, rel=1e-12)
    assert b["programming"]["resets"] == pytest.approx(0.8) and b["programming"]["verify_reads"] == 0
    assert a["programming_energy_j"]["initial"] == pytest.approx(18 * 13.5e-12 + 12 * 19.2e-12 + 24 * conv, rel=1e-12)
    assert a["programming_energy_j"]["verify"] == pytest.approx(6.4 * conv, rel=1e-12)
    assert b["programming_energy_j"]["initial"] == 0.0
    e = est["train"]["energy_j"]
    assert e["programming"] == pytest.approx(46 * 13.5e-12 + 4 * 19.2e-12, rel=1e-12)  # per layer sums to the run
    assert e["initial_programming"] == a["programming_energy_j"]["initial"]
    assert est["train"]["latency_s"]["initial_programming"] == pytest.approx(7 * (150e-9 + 128e-9 + 5e-9), rel=1e-12)


def test_half_the_inputs_silent_spends_half_on_dacs_and_array() -> None:
    def run(x: torch.Tensor) -> dict[str, Any]:
        xb = Crossbar(2, 4, "ideal", CrossbarConfig(weight_scale=0.1), seed=0)
        xb.program_weights(torch.full((2, 4), 0.2), 0.0)  # every row holds the same conductance
        xb.mvm(x, 1.0)
        return estimate(_counts_of(xb, xb.stats.as_dict()), DEFAULT_PROFILE)["train"]["energy_j"]

    dense, sparse = run(torch.ones(5, 4)), run(torch.tensor([[1.0, 0, 1, 0]]).repeat(5, 1))
    assert dense["array"] > 0 and dense["dac"] > 0
    assert sparse["array"] == pytest.approx(0.5 * dense["array"], rel=1e-6)
    assert sparse["dac"] == pytest.approx(0.5 * dense["dac"], rel=1e-12)
    assert sparse["adc"] == dense["adc"]  # every column is still converted


def test_counting_changes_no_number() -> None:
    """The same reads with the counts zeroed midway give the same outputs and generator state."""
    a, b = _ideal_2x3(), _ideal_2x3()
    ya = [a.mvm(SPIKES, 1.0) for _ in range(3)]
    b.stats.reset()
    yb = [b.mvm(SPIKES, 1.0) for _ in range(3)]
    assert all(torch.equal(p, q) for p, q in zip(ya, yb))
    assert torch.equal(a.generator.get_state(), b.generator.get_state())
    sd = a.stats.state_dict()
    assert sd["array_gx_us"].dtype == torch.float64 and float(sd["array_gx_us"]) == pytest.approx(3 * 30)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"drop": "e_set_j"}, "e_set_j"),
        ({"set": ("e_reset_j", -1.0)}, "field 'e_reset_j' = -1"),
        ({"set": ("adc_fom_j_per_step", 0)}, "field 'adc_fom_j_per_step' = 0"),
        ({"set": ("v_read_v", "0.2")}, "field 'v_read_v'"),
        ({"set": ("leakage_w", 1.0)}, "unknown field 'leakage_w'"),
        ({"source": ("t_read_s", None)}, "field 'sources.t_read_s' is missing or empty"),
        ({"source": ("e_set_j", "  ")}, "field 'sources.e_set_j' is missing or empty"),
        ({"source": ("leakage_w", "a paper")}, "field 'sources.leakage_w' names no constant"),
    ],
)
def test_a_bad_profile_is_refused_with_one_line_naming_the_field(change: dict[str, Any], match: str,
                                                                  tmp_path: Path) -> None:
    data = DEFAULT_PROFILE.to_dict()
    if "drop" in change:
        del data[change["drop"]]
    elif "source" in change:
        k, v = change["source"]
        if v is None:
            del data["sources"][k]
        else:
            data["sources"][k] = v
    else:
        k, v = change["set"]
        data[k] = v
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=match) as info:
        get_profile(str(path))
    assert "\n" not in str(info.value)


def test_profiles_by_name_and_file_and_the_shipped_json() -> None:
    assert get_profile(None) is DEFAULT_PROFILE and get_profile("pcm-hermes-45nm") is DEFAULT_PROFILE
    assert load_profile(DEFAULT_PROFILE.to_dict()) == DEFAULT_PROFILE
    shipped = REPO / "configs" / "cost_profiles" / "pcm-hermes-45nm.json"
    assert get_profile(str(shipped)) == DEFAULT_PROFILE  # the file and the registry cannot drift apart
    with pytest.raises(ConfigError, match="neither a registered name"):
        get_profile("no-such-profile")
    assert set(DEFAULT_PROFILE.sources) == set(DEFAULT_PROFILE.constants())  # every constant has its source
    assert all(len(text) > 20 for text in DEFAULT_PROFILE.sources.values())


TINY: dict[str, Any] = {
    "task": "classification", "dataset": "digits", "encoder": "poisson", "steps": 4, "flavour": "pcm",
    "network": {"layers": [64, 16, 10], "neuron": "lif", "surrogate": "flat"},
    "train_limit": 96, "test_limit": 48, "valid_fraction": 0.25, "epochs": 2, "batch_size": 24, "lr": 0.005,
}


@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cost")
    config = load_config(TINY)
    run_training(config, root / "full", progress=False)
    part = interrupting_trainer(2)(config, root / "part", progress=False)
    with pytest.raises(TrainingInterrupted):
        run_training(config, root / "part", trainer=part, progress=False)
    run_training(config, root / "part", resume=True, progress=False)
    return root / "full", root / "part"


def test_a_pcm_run_records_counts_per_phase_and_a_resumed_run_the_same(finished_runs: tuple[Path, Path]) -> None:
    full, part = finished_runs
    a = json.loads((full / "results.json").read_text())
    b = json.loads((part / "results.json").read_text())
    assert a["hardware_counts"] == b["hardware_counts"] and a["cost"] == b["cost"]
    counts = a["hardware_counts"]
    n_train, batch, steps, epochs = 72, 24, 4, 2  # 96 · (1 − 0.25) training samples
    assert counts["batches"] == epochs * n_train // batch
    first = counts["layers"][0]
    assert first["train"]["input_vectors"] == epochs * n_train * steps  # one vector per sample and step
    assert first["train"]["mvm_calls"] == counts["batches"]  # the encoded input: all steps in one call
    assert counts["layers"][1]["train"]["input_vectors"] == epochs * n_train * steps
    assert 0 < first["train"]["dac_nonzero"] < first["train"]["input_vectors"] * 64  # Poisson spikes: sparse
    assert first["eval"]["input_vectors"] > 0 and first["eval"]["array_gx_us"] > 0
    assert counts["pulses_set"] == a["pulses_set"] > 0
    assert counts["eval_sequences"] == epochs * (24 + 48)  # valid and test, read once per epoch
    inf = a["cost"]["inference"]
    eval_j = sum(sum(ly["eval_energy_j"].values()) for ly in a["cost"]["layers"])
    eval_j += 5 * 2.3e-12 * sum(ly["eval"]["input_vectors"] * ly["out"] for ly in counts["layers"])  # neurons
    assert inf["energy_j_per_sequence"] == pytest.approx(eval_j / counts["eval_sequences"], rel=1e-12)
    assert a["cost"]["train"]["energy_j_total"] > 0 and a["cost"]["inference"]["energy_j_per_step_total"] > 0
    # the devices' own pulse counters agree with what the update scheme reported, layer by layer summed
    assert sum(ly["pulses"] for ly in counts["layers"]) == counts["pulses_set"]
    for ly in counts["layers"]:  # the initial transfer: every weight pair programmed, every device pulsed
        assert ly["initial"]["weight_pairs"] == ly["in"] * ly["out"] * ly["devices_per_sign"]
        assert ly["initial"]["pulses"] >= 2 * ly["initial"]["weight_pairs"] and ly["initial"]["rounds"] >= 1
    assert a["cost"]["train"]["energy_j"]["initial_programming"] > 0
    per_layer = sum(ly["programming_energy_j"]["training"] for ly in a["cost"]["layers"])
    assert per_layer == pytest.approx(a["cost"]["train"]["energy_j"]["programming"], rel=1e-12)


def test_pcmsim_cost_prints_the_table_and_writes_the_figure(finished_runs: tuple[Path, Path], tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    full, _ = finished_runs
    fig = tmp_path / "cost.png"
    assert main(["cost", str(full), "--out", str(fig)]) == 0
    out = capsys.readouterr().out
    assert "PCM chip" in out and "GPU baseline" in out and "SET/RESET pulses" in out and "area" in out
    assert "programming per layer" in out and "not included: static and leakage power" in out
    assert fig.is_file() and fig.read_bytes()[:4] == b"\x89PNG"
    assert main(["cost", str(full), "--cost-profile", "nope", "--out", str(fig)]) == 2
    assert "neither a registered name" in capsys.readouterr().err



def test_a_run_without_eval_sequences_takes_them_from_its_split_sizes(finished_runs: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    from hardware_in_loop.cost_report import run_estimate

    full, _ = finished_runs
    results = json.loads((full / "results.json").read_text())
    del results["hardware_counts"]["eval_sequences"]
    (tmp_path / "results.json").write_text(json.dumps(results))
    _, est = run_estimate(tmp_path, DEFAULT_PROFILE)
    assert est["inference"]["energy_j_per_sequence"] == pytest.approx(
        results["cost"]["inference"]["energy_j_per_sequence"], rel=1e-12)


def test_the_sweep_summary_carries_the_energies_as_mean_and_std_over_seeds(tmp_path: Path) -> None:
    from hardware_in_loop.checkpoint import write_json
    from hardware_in_loop.sweep_report import format_table
    from hardware_in_loop.sweep_stats import csv_text, read_records, summarize

    manifest = {
        "name": "m", "source": "m", "task": "music", "metric": "nll", "higher_is_better": False,
        "axes": {"x": [1, 2]}, "seeds": [0, 1], "mode": "grid",
        "settings": [{"index": i, "values": {"x": i + 1}, "label": f"x={i + 1}"} for i in range(2)],
        "points": [{"id": f"{i}{s}", "setting": i, "seed": s} for i in range(2) for s in range(2)],
    }
    energies = {"00": (1.0, 4e-9), "01": (3.0, 6e-9), "10": (2.0, 5e-9)}  # "11": a run without a cost estimate
    for pid in ("00", "01", "10", "11"):
        results: dict[str, Any] = {"valid_nll": 9.0, "test_nll": 9.1, "pulses_set": 10, "pulses_reset": 2,
                                   "saturated_devices": 0}
        if pid in energies:
            train, step = energies[pid]
            results["cost"] = {"train": {"energy_j_total": train}, "inference": {"energy_j_per_step_total": step}}
        write_json(tmp_path / "points" / pid / "results.json", results)
        write_json(tmp_path / "points" / pid / "timing.json", {"wall_time_s": 1.0, "train_wall_time_s": 1.0})
    records = read_records(tmp_path, manifest)
    assert records["00"]["train_energy_j"] == 1.0 and "train_energy_j" not in records["11"]
    from hardware_in_loop.sweep_point import point_record  # what pcmsim sweep itself records

    assert point_record(tmp_path / "points" / "01", "nll")["train_energy_j"] == 3.0
    summary = summarize(manifest, records)
    first, second = summary["settings"]
    assert first["train_energy_j"]["n"] == 2 and first["train_energy_j"]["mean"] == 2.0
    assert first["train_energy_j"]["std"] == pytest.approx(2**0.5, rel=1e-12)  # sample std of 1 and 3
    assert first["inference_energy_j_per_step"]["mean"] == pytest.approx(5e-9, rel=1e-12)
    assert second["train_energy_j"] == {"n": 1, "mean": 2.0, "std": None, "ci95_low": None, "ci95_high": None}
    header = csv_text(summary).splitlines()[0].split(",")
    assert "train_energy_j_mean" in header and "inference_energy_j_per_step_std" in header
    table = format_table(summary)
    assert "train J mean ± std" in table and "inference J/step mean ± std" in table
    assert "2 ± 1.4" in table and "5e-09 ± 1.4e-09" in table
    manifest["points"] = [p for p in manifest["points"] if p["id"] == "11"]  # no estimate anywhere: no column
    assert "train J" not in format_table(summarize(manifest, read_records(tmp_path, manifest)))
