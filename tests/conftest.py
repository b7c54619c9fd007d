"""Suite-wide settings: hypothesis profiles (``HYPOTHESIS_PROFILE=fast`` for quick local runs)."""

import os

from hypothesis import settings

settings.register_profile("ci", max_examples=100, deadline=None)
settings.register_profile("fast", max_examples=10, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
