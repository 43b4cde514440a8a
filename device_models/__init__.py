"""device_models: the physics of populations of memory devices (no knowledge of networks).

Every model sits behind :class:`DeviceModel` and is swappable by name::

    import device_models
    model = device_models.get("pcm-nandakumar2018", g_max_us=20.0)

Registered models: ``ideal``, ``pcm-nandakumar2018`` (and ``pcm-nandakumar2018-20us``),
``pcm-joshi2020``, ``pcm-aihwkit-preset``, ``empirical``. A model fitted to measurements
(:mod:`device_models.fit`, ``pcmsim device fit``) is a JSON file that ``get`` takes in place of
a name: ``device_models.get("my-device.json")``.
"""

from .aihwkit_preset import AihwkitPresetDevice, AihwkitPresetParams
from .base import DeviceModel, DeviceParams
from .checks import DeviceParameterError, check_range, param
from .empirical import CSVFormatError, EmpiricalDevice, EmpiricalParams, register_csv_fitter
from .fit import fit_pulse_csv, is_fitted_file, load_fitted
from .ideal import IdealDevice, IdealParams
from .joshi2020 import JoshiDevice, JoshiParams
from .measurements import write_drift_csv, write_pulse_response_csv, write_read_noise_csv
from .nandakumar2018 import Nandakumar20Device, NandakumarDevice, NandakumarParams
from .registry import (
    available,
    describe_valid,
    did_you_mean,
    get,
    is_model,
    param_overrides,
    params_for,
    register,
    register_file_loader,
    resolve,
)
from .state import DeviceState, ProgramReport
from .verify import PulseLevelDevice, program_and_verify

register(IdealDevice)
register(NandakumarDevice)
register(Nandakumar20Device)
register(JoshiDevice)
register(AihwkitPresetDevice)
register(EmpiricalDevice)
register_file_loader(is_fitted_file, load_fitted)
register_csv_fitter(fit_pulse_csv)

__all__ = [
    "AihwkitPresetDevice",
    "AihwkitPresetParams",
    "CSVFormatError",
    "DeviceModel",
    "DeviceParameterError",
    "DeviceParams",
    "DeviceState",
    "EmpiricalDevice",
    "EmpiricalParams",
    "IdealDevice",
    "IdealParams",
    "JoshiDevice",
    "JoshiParams",
    "Nandakumar20Device",
    "NandakumarDevice",
    "NandakumarParams",
    "ProgramReport",
    "PulseLevelDevice",
    "available",
    "check_range",
    "describe_valid",
    "did_you_mean",
    "get",
    "is_model",
    "param",
    "param_overrides",
    "params_for",
    "program_and_verify",
    "register",
    "resolve",
    "write_drift_csv",
    "write_pulse_response_csv",
    "write_read_noise_csv",
]
