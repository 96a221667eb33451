"""Settings shared by every test folder."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Property tests check what a function returns, never how fast: on a loaded 2-core CI
# machine hypothesis's per-example deadline and its "generation too slow" check only
# produce failures unrelated to the code under test.
settings.register_profile(
    "mcpr", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("mcpr")
