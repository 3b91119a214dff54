"""`sluice.middleware.SluiceMiddleware`, the name the docs and host apps use: the client's middleware.

The implementation lives with the client (sluice/client/middleware.py), which needs only the
standard library; this module only gives it the short import path, so there is one middleware.
"""

from __future__ import annotations

from sluice.client.middleware import SluiceMiddleware

__all__ = ["SluiceMiddleware"]
