"""Energy, latency and area of a simulated run: a hardware cost profile (:mod:`.profile`) and the
estimate from the counts a run gathered (:mod:`.estimate`)."""

from .estimate import estimate
from .profile import DEFAULT_PROFILE, CostProfile, available_profiles, get_profile, load_profile

__all__ = ["DEFAULT_PROFILE", "CostProfile", "available_profiles", "estimate", "get_profile", "load_profile"]
