"""One Hypothesis profile for the property tests that compare a fast path with its reference."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

PROPERTY = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,  # the same cases every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
