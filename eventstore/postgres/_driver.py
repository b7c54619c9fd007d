"""Imported first by `eventstore.postgres`, so that a missing driver names its extra."""

from eventstore._extras import require_extra

for _module in ("psycopg", "psycopg_pool"):
    require_extra(_module, "postgres", needed_by="eventstore.postgres")
