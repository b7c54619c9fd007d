"""
`require_extra`: an optional dependency imported, or an error that names the extra to install.

The core package imports none of them; the PostgreSQL backend and the test
kit's server need theirs, and a bare ``No module named 'psycopg'`` would not
say that ``pip install 'pg-eventstore[postgres]'`` is the fix.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require_extra"]


def require_extra(module: str, extra: str, *, needed_by: str) -> ModuleType:
    """
    Import *module*, which the *extra* extra installs.

    Args:
        module: The module's import name (``"psycopg"``).
        extra: The extra of ``pg-eventstore`` that installs it.
        needed_by: What needs it, for the message (``"eventstore.postgres"``).

    Returns:
        The module.

    Raises:
        ModuleNotFoundError: *module* is not installed; the message names
            the extra (an error from inside an installed *module* is its own).
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as missing:
        if missing.name != module:
            raise
        raise ModuleNotFoundError(
            f"{needed_by} needs {module}, which the {extra} extra installs: "
            f"pip install 'pg-eventstore[{extra}]'",
            name=module,
        ) from missing
