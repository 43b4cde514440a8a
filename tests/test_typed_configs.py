"""Every block of a run config is typed: the blocks another field chooses (device parameters by the
device model, scheme parameters by the update scheme, encoder options by the encoder) load into that
choice's own dataclass, refuse what it does not have in one line, and are written back as what differs
from its defaults, so ``config.json`` holds what the user set."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import pytest

import device_models
from device_models import JoshiParams, NandakumarParams
from hardware_in_loop.schemes import ProgramVerifyParams
from hardware_in_loop.tasks import TASKS, load_config
from hardware_in_loop.tasks.classification import ClassificationConfig
from pcmsim.aihwkit_bridge import AihwkitOptions
from pcmsim.crossbar import CrossbarConfig
from pcmsim.encoders import LatencyParams, PoissonParams
from pcmsim.network_config import NetworkConfig
from pcmsim.typedconfig import ConfigError

IRIS: dict[str, Any] = {"task": "classification", "dataset": "iris", "encoder": "tile", "steps": 8,
                        "network": {"layers": [4, 16, 3]}}


def _untyped(tp: Any) -> bool:
    """Whether a type hint is (or contains) a ``dict`` of ``Any`` values."""
    if typing.get_origin(tp) is dict:
        return typing.get_args(tp)[1:] in ((Any,), ())
    return any(_untyped(a) for a in typing.get_args(tp))


@pytest.mark.parametrize("name", sorted(TASKS))
def test_no_config_field_is_an_untyped_dict(name: str) -> None:
    cls = TASKS[name].config_class
    hints = typing.get_type_hints(cls)
    untyped = [f.name for f in dataclasses.fields(cls) if _untyped(hints[f.name])]
    assert untyped == [], f"{cls.__name__} fields without a type: {untyped}"


def test_device_params_are_the_chosen_models_own_dataclass() -> None:
    cfg = load_config({**IRIS, "flavour": "pcm", "device_model": "pcm-joshi2020", "device_params": {"g_max_us": 20}})
    assert isinstance(cfg.device_params, JoshiParams) and cfg.device_params.g_max_us == 20
    assert cfg.device_params.t0_s == JoshiParams().t0_s  # the rest are the model's own
    assert cfg.to_dict()["device_params"] == {"g_max_us": 20}
    other = cfg.replace(device_model="pcm-nandakumar2018")
    assert isinstance(other.device_params, NandakumarParams) and other.device_params.g_max_us == 20
    with pytest.raises(ConfigError, match=r"^config: field 'device_params': unknown parameter\(s\) \['t_prog'\]"):
        cfg.replace(device_params={"t_prog": 1.0})
    with pytest.raises(ConfigError, match="^config: field 'device_params': .*g_max_us=-1"):
        cfg.replace(device_params={"g_max_us": -1})
    # a typed value of another model is refused, not silently reinterpreted
    with pytest.raises(ConfigError, match="NandakumarParams are not those of device model 'pcm-joshi2020'"):
        dataclasses.replace(cfg, device_params=NandakumarParams())
    # the model built from the config has exactly those parameters
    assert device_models.resolve(cfg.device_model, cfg.device_params).params == cfg.device_params


def test_crossbar_and_aihwkit_are_typed_blocks() -> None:
    cfg = load_config({**IRIS, "crossbar": {"weight_scale": 0.1, "periphery": "ideal"}})
    assert isinstance(cfg.crossbar, CrossbarConfig) and cfg.crossbar.weight_scale == 0.1
    assert cfg.to_dict()["crossbar"]["weight_scale"] == 0.1
    again = load_config(cfg.to_dict())
    assert again.crossbar == cfg.crossbar and again == cfg
    assert isinstance(cfg.aihwkit, AihwkitOptions) and cfg.to_dict()["aihwkit"] == {}
    with pytest.raises(ConfigError, match=r"field 'aihwkit.g_max_us' = 20 is invalid: expected null: g_max_us sets"):
        load_config({**IRIS, "aihwkit": {"preset": "pcm-preset", "g_max_us": 20}})
    with pytest.raises(ConfigError, match=r"field 'aihwkit.preset' = 'pcm-presett' is invalid: expected one of .*"
                                          r"did you mean 'pcm-preset'"):
        load_config({**IRIS, "aihwkit": {"preset": "pcm-presett"}})
    with pytest.raises(ConfigError, match="unknown field 'crossbar.preset'"):
        load_config({**IRIS, "crossbar": {"preset": "pcm-preset"}})


def test_scheme_params_follow_the_update_scheme() -> None:
    cfg = load_config({**IRIS, "flavour": "pcm", "update_scheme": "program-verify",
                       "scheme_params": {"every_k_steps": 3}})
    assert cfg.scheme_params == ProgramVerifyParams(every_k_steps=3)
    assert cfg.to_dict()["scheme_params"] == {"every_k_steps": 3}
    with pytest.raises(ConfigError, match="unknown field 'scheme_params.every_k_steps'"):
        cfg.replace(update_scheme="mixed-precision")


def test_encoder_params_and_network_are_typed() -> None:
    cfg = load_config({**IRIS, "encoder": "latency", "encoder_params": {"zero": "last"},
                       "network": {"layers": [4, 16, 3], "neuron": "snu", "init_scale": 0.5}})
    assert cfg.encoder_params == LatencyParams(zero="last")
    assert isinstance(cfg.network, NetworkConfig) and cfg.network.layers == (4, 16, 3)
    assert cfg.network.init_scale == 0.5 and cfg.network.neuron == "snu"
    # keys the file leaves out keep the task's default network (here the integrator readout)
    assert cfg.network == NetworkConfig(layers=(4, 16, 3), neuron="snu", readout="integrator", init_scale=0.5)
    assert load_config(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match=r"field 'encoder_params.zero' = 'first' is invalid"):
        cfg.replace(encoder_params={"zero": "first"})
    poisson = cfg.replace(encoder="poisson", encoder_params={"max_rate": 0.5})
    assert poisson.encoder_params == PoissonParams(max_rate=0.5)
    with pytest.raises(ConfigError, match=r"field 'network.layers' = \[4\] is invalid: expected a list of ≥ 2"):
        cfg.replace(network={"layers": [4]})
    # the Python API refuses what a file refuses
    with pytest.raises(ConfigError, match="max_rate·dt ≤ 1"):
        ClassificationConfig(encoder="poisson", encoder_params={"max_rate": 2.0})


def test_config_json_keeps_only_what_differs_from_the_defaults() -> None:
    """What a config writes back loads to the same config, and a value equal to the default is not
    repeated (``config.json`` holds the settings that matter to the run)."""
    data = {**IRIS, "flavour": "pcm", "device_params": {"g_max_us": 12.0, "nu": 0.05},
            "crossbar": {"tile_rows": 256, "tile_cols": 64}}
    cfg = load_config(data)
    out = cfg.to_dict()
    assert out["device_params"] == {"nu": 0.05} and out["crossbar"] == {"tile_cols": 64}
    assert load_config(out) == cfg


@pytest.mark.parametrize("name", device_models.available())
def test_device_parameters_carry_their_ranges_as_field_metadata(name: str) -> None:
    """A device model's parameters are checked by the same typed-config metadata as every config: the range
    is the field's (``device_models.checks.param``), so the check, its message and the reference page agree."""
    params = type(device_models.get(name).params)
    g_max = params.__dataclass_fields__["g_max_us"]  # type: ignore[attr-defined]
    assert g_max.metadata["expected"] == "a finite number in (0, inf)"
    with pytest.raises(device_models.DeviceParameterError,
                       match=r"^parameter g_max_us=-1\.0 is invalid: expected a finite number in \(0, inf\)$"):
        device_models.get(name, g_max_us=-1.0)
    with pytest.raises(device_models.DeviceParameterError, match=r"^parameter g_max_us='12' is invalid"):
        device_models.get(name, g_max_us="12")


def test_a_csv_device_is_fitted_when_built_not_when_its_config_loads(tmp_path) -> None:
    """``empirical`` with ``csv_path``: the config types and checks the parameters without the fit (no model
    is built at load, replace or resume), records what was set, and a missing file is refused at load."""
    csv = tmp_path / "pulses.csv"
    csv.write_text("device,pulse,g_us\n" + "".join(f"{d},{k},{0.1 + 0.5 * k}\n" for d in range(3) for k in range(3)))
    cfg = load_config({**IRIS, "device_model": "empirical", "device_params": {"csv_path": str(csv), "n_bins": 6}})
    assert cfg.device_params.csv_path == str(csv)
    assert cfg.device_params.dg_mean_us == device_models.EmpiricalParams().dg_mean_us  # not fitted here
    assert cfg.to_dict()["device_params"] == {"csv_path": str(csv), "n_bins": 6}
    with pytest.raises(ConfigError, match=r"field 'device_params': .*absent\.csv: no such file"):
        cfg.replace(device_params={"csv_path": str(tmp_path / "absent.csv")})


def test_music_and_classification_share_one_network_config() -> None:
    """Both tasks read a pcmsim.NetworkConfig; a block a file gives is read over the task's own default
    network, so a key left out keeps the task's value (LIF + integrator for classification, SNU + sSNU
    for music)."""
    iris = load_config({**IRIS, "network": {"layers": [4, 16, 3]}})
    music = load_config({"task": "music", "network": {"layers": [88, 16, 88]}})
    assert type(iris.network) is type(music.network) is NetworkConfig
    assert (iris.network.neuron, iris.network.readout) == ("lif", "integrator")
    assert (music.network.neuron, music.network.readout) == ("snu", "ssnu")
    # each task refuses a readout of the other kind, naming the field
    with pytest.raises(ConfigError, match=r"'network.readout' = 'sigmoid' is invalid: expected a per-example"):
        load_config({**IRIS, "network": {"layers": [4, 16, 3], "readout": "sigmoid"}})
    # LIF hidden units in a music network, SNUs in a classifier: one builder on the neuron registry
    lif_music = load_config({"task": "music", "network": {"layers": [88, 16, 88], "neuron": "lif"}})
    assert lif_music.network.neuron == "lif"
    # the generated config reference shows each task's own network defaults
    from pcmsim.typedconfig import help_lines

    assert "network.neuron: one of lif, snu, ssnu, leaky, cuba-lif (default 'lif')" in help_lines(type(iris))
    assert "network.neuron: one of lif, snu, ssnu, leaky, cuba-lif (default 'snu')" in help_lines(type(music))


def test_the_music_networks_earlier_keys_still_load() -> None:
    """A config.json written before the one network config (``sizes``, ``hidden``, ``output``) loads to
    the same run config, so older run folders evaluate and resume."""
    old = {"task": "music", "network": {"sizes": [88, 24, 88], "hidden": "ssnu", "output": "sigmoid",
                                         "decay": 0.8, "threshold": 1.0, "output_threshold": 1.0,
                                         "activation": "relu", "train_decay": True}}
    new = {"task": "music", "network": {"layers": [88, 24, 88], "neuron": "ssnu", "readout": "sigmoid",
                                         "train_decay": True}}
    assert load_config(old) == load_config(new)
    with pytest.raises(ConfigError, match=r"'network.hidden' is the earlier name of 'network.neuron'"):
        load_config({"task": "music", "network": {"hidden": "snu", "neuron": "snu"}})


def test_a_long_value_in_a_message_keeps_what_names_it():
    """A long string (a path) keeps its end, the file's name; a long list its start."""
    from device_models.typedconfig import bad_value

    path = "/a" * 60 + "/absent.json"
    msg = str(bad_value("run.json", "device_model", path, "a file"))
    assert msg.endswith("/a/absent.json' is invalid: expected a file")
    assert msg.count("...") == 1 and len(msg) < 160
    assert "[0, 1, 2" in str(bad_value("run.json", "layers", list(range(100)), "widths"))
