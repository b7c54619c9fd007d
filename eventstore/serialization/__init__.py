"""
Serialization of events and snapshots: a type registry with versioned schemas.

`Registry` maps stable type names to attrs classes and schema versions,
encodes objects into JSON-able `Payload` data with cattrs, and decodes stored
payloads, running upcasters for older schema versions. `TRANSIENT` marks an
attrs field that is deliberately not stored.
"""

from eventstore.serialization._types import TRANSIENT
from eventstore.serialization.registry import Payload, Registry
from eventstore.serialization.upcasting import Upcaster

__all__ = ["TRANSIENT", "Payload", "Registry", "Upcaster"]
