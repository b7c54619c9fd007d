"""
The test kit eventstore ships to host apps.

- pytest fixtures (``memory_store``, …) from the plugin, active once
  eventstore is installed.
"""

__all__: list[str] = []
