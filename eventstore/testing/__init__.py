"""
The test kit eventstore ships to host apps.

- `EventStoreContract`: the backend contract suite; subclass it and give it
  a ``store`` fixture to check a backend.
- `read_log`: wait, with a deadline, until the global log shows appended
  events.
- pytest fixtures (``memory_store``, …) from the plugin, active once
  eventstore is installed.
"""

from eventstore.testing.contract import EventStoreContract, json_objects, read_log

__all__ = ["EventStoreContract", "json_objects", "read_log"]
