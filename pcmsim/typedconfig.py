"""The typed-config loader (:mod:`device_models.typedconfig`) under pcmsim's name.

It lives in ``device_models``, the lowest of the three packages, so that device parameters are checked
by the same field metadata as run, crossbar and network configs; ``pcmsim.typedconfig`` and
``device_models.typedconfig`` give the same functions.
"""

from device_models.typedconfig import *  # noqa: F403
from device_models.typedconfig import __all__  # noqa: F401
