"""The operators' bearer token (`/etl/*`, `/events/*`): SLUICE_ADMIN_TOKEN, or one Sluice makes.

With SLUICE_ADMIN_TOKEN empty, the first command that needs a token makes a random one and keeps it
in `SLUICE_DATA_DIR/admin-token` (mode 0600); later runs read it from there, and `sluice token`
prints it, so that shell examples can say `$(sluice token)`.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import replace
from pathlib import Path

from sluice.settings import ConfigError, Settings

FILE_NAME = "admin-token"


def token_path(settings: Settings) -> Path:
    return settings.data_dir / FILE_NAME


def with_admin_token(settings: Settings) -> Settings:
    """`settings` with a token: SLUICE_ADMIN_TOKEN's, else the data folder's, made on first use."""
    if settings.admin_token:
        return settings
    path = token_path(settings)
    try:
        token = path.read_text(encoding="ascii").strip() if path.exists() else _create(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"SLUICE_ADMIN_TOKEN is not set and {path} cannot be used: {exc}") from None
    if not token:
        raise ConfigError(f"{path} is empty: delete it and Sluice makes a new token, or set SLUICE_ADMIN_TOKEN")
    # Settings.from_env checks SLUICE_ADMIN_TOKEN against the other tokens; the kept one must pass
    # the same checks, or an operator who copied it into SLUICE_INGEST_TOKENS hands a host app the controls.
    if token in settings.ingest_tokens:
        raise ConfigError(f"SLUICE_INGEST_TOKENS must not hold the admin token in {path}: give servers their own")
    if token == settings.read_token:
        raise ConfigError(f"SLUICE_READ_TOKEN must differ from the admin token in {path}: it would reach the controls")
    return replace(settings, admin_token=token)


def _create(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    # Written whole under a temporary name (mkstemp makes it 0600), then linked into place: a
    # process starting at the same moment finds either no file or the complete one, and the
    # link fails rather than replace a token another process made first.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{FILE_NAME}.")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(token + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            return path.read_text(encoding="ascii").strip()
    finally:
        os.unlink(temporary)
    return token
