"""The client's name on the wire."""

from __future__ import annotations

from importlib import metadata

try:
    VERSION = metadata.version("sluice")
except metadata.PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0"

USER_AGENT = f"sluice-python/{VERSION}"
