"""device_models: the physics of populations of memory devices (no knowledge of networks).

Every model sits behind :class:`DeviceModel` and is swappable by name::

    import device_models
    model = device_models.get("pcm-nandakumar2018", g_max_us=20.0)

Registered models: ``ideal``, ``pcm-nandakumar2018`` (and ``pcm-nandakumar2018-20us``),
``pcm-joshi2020``, ``pcm-aihwkit-preset``, ``empirical``.
"""

from .aihwkit_preset import AihwkitPresetDevice, AihwkitPresetParams
from .base import (
    DeviceModel,
    DeviceParameterError,
    DeviceState,
    ProgramReport,
    PulseLevelDevice,
    program_and_verify,
)
from .empirical import CSVFormatError, EmpiricalDevice, EmpiricalParams, write_pulse_response_csv
from .ideal import IdealDevice
from .joshi2020 import JoshiDevice, JoshiParams
from .nandakumar2018 import Nandakumar20Device, NandakumarDevice, NandakumarParams
from .registry import available, get, register

register(IdealDevice)
register(NandakumarDevice)
register(Nandakumar20Device)
register(JoshiDevice)
register(AihwkitPresetDevice)
register(EmpiricalDevice)

__all__ = [
    "AihwkitPresetDevice",
    "AihwkitPresetParams",
    "CSVFormatError",
    "DeviceModel",
    "DeviceParameterError",
    "DeviceState",
    "EmpiricalDevice",
    "EmpiricalParams",
    "IdealDevice",
    "JoshiDevice",
    "JoshiParams",
    "Nandakumar20Device",
    "NandakumarDevice",
    "NandakumarParams",
    "ProgramReport",
    "PulseLevelDevice",
    "available",
    "get",
    "program_and_verify",
    "register",
    "write_pulse_response_csv",
]
