"""Hypothesis profiles for the fuzz suite (registered here only, so other tests keep hypothesis' defaults).

- ``ci`` (the default): a fixed seed (``derandomize=True``) and modest example counts, so the
  whole fuzz suite runs in well under 3 minutes on a 2-core machine and gives the same
  examples on every run.
- ``nightly``: the same strategies with ~20× the examples (still derandomized, so a failure
  reproduces): ``HYPOTHESIS_PROFILE=nightly python -m pytest tests/fuzz``.

The profile is applied per test through ``fuzzkit.fuzz_settings`` (never ``load_profile``), so
running this directory together with the rest of the suite changes nothing for other tests.
"""
from __future__ import annotations

from hypothesis import HealthCheck, settings

_COMMON = dict(
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture],
)
settings.register_profile("ci", max_examples=200, **_COMMON)
settings.register_profile("nightly", max_examples=4000, **_COMMON)
