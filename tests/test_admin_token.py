"""With SLUICE_ADMIN_TOKEN empty, Sluice makes the operators' token once and keeps it (mode 0600)."""

from __future__ import annotations

import stat
from dataclasses import replace
from pathlib import Path

import pytest

from sluice.admin_token import token_path, with_admin_token
from sluice.cli import main
from sluice.settings import ConfigError, Settings


def test_the_first_use_makes_a_token_later_ones_read_it(tmp_path: Path) -> None:
    settings = replace(Settings(), data_dir=tmp_path / "data")
    made = with_admin_token(settings).admin_token
    path = token_path(settings)
    assert path == tmp_path / "data" / "admin-token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == made + "\n"
    assert len(made) >= 40
    assert with_admin_token(settings).admin_token == made
    assert [p.name for p in path.parent.iterdir()] == ["admin-token"]  # no temporary file left


def test_a_set_sluice_admin_token_is_used_and_nothing_is_written(tmp_path: Path) -> None:
    settings = replace(Settings(), data_dir=tmp_path, admin_token="from-the-environment")
    assert with_admin_token(settings) is settings
    assert list(tmp_path.iterdir()) == []


def test_an_empty_token_file_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "admin-token").write_text("\n")
    with pytest.raises(ConfigError, match="admin-token is empty: delete it and Sluice makes a new token"):
        with_admin_token(replace(Settings(), data_dir=tmp_path))


def test_sluice_token_prints_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SLUICE_ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("SLUICE_DATA_DIR", str(tmp_path))
    assert main(["token"]) == 0
    assert capsys.readouterr().out == (tmp_path / "admin-token").read_text()
    monkeypatch.setenv("SLUICE_ADMIN_TOKEN", "set-by-the-operator")
    assert main(["token"]) == 0
    assert capsys.readouterr().out == "set-by-the-operator\n"


def test_the_kept_token_is_refused_as_an_ingest_or_read_token(tmp_path: Path) -> None:
    kept = with_admin_token(replace(Settings(), data_dir=tmp_path)).admin_token
    as_ingest = replace(Settings(), data_dir=tmp_path, ingest_tokens=("host-app", kept))
    with pytest.raises(ConfigError, match=r"SLUICE_INGEST_TOKENS must not hold the admin token in .*admin-token"):
        with_admin_token(as_ingest)
    with pytest.raises(ConfigError, match="SLUICE_READ_TOKEN must differ from the admin token"):
        with_admin_token(replace(Settings(), data_dir=tmp_path, read_token=kept))
    others = replace(Settings(), data_dir=tmp_path, ingest_tokens=("host-app",), read_token="reader")
    assert with_admin_token(others).admin_token == kept
