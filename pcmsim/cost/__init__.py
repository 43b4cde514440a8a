"""Energy, latency and area of a simulated run: a hardware cost profile (:mod:`.profile`), the one
digital cost model (:mod:`.digital`), the estimate from the counts a run gathered
(:mod:`.estimate`) and the calibration against measured chips (:mod:`.calibration`)."""

from .estimate import estimate
from .profile import DEFAULT_PROFILE, CostProfile, available_profiles, get_profile, load_profile

__all__ = ["DEFAULT_PROFILE", "CostProfile", "available_profiles", "estimate", "get_profile", "load_profile"]
