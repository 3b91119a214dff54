from __future__ import annotations

import ipaddress

import pytest

from sluice.cli import main
from sluice.settings import ConfigError, Settings


def test_defaults_when_nothing_is_set() -> None:
    settings = Settings.from_env({})
    assert settings.database_url == ""
    assert settings.schema == "sluice"
    assert settings.etl_schedule == "60"
    assert ipaddress.ip_address("127.0.0.1") in settings.trusted_proxies[0]
    assert settings.ingest_tokens == ()
    assert settings.require_known_sites is False


def test_ingest_tokens_are_a_comma_separated_list() -> None:
    settings = Settings.from_env({"SLUICE_INGEST_TOKENS": " api-1, ,shortener-2 "})
    assert settings.ingest_tokens == ("api-1", "shortener-2")


@pytest.mark.parametrize(("raw", "on"), [("on", True), ("1", True), ("TRUE", True), ("off", False), ("0", False)])
def test_require_known_sites_is_a_switch(raw: str, on: bool) -> None:
    assert Settings.from_env({"SLUICE_REQUIRE_KNOWN_SITES": raw}).require_known_sites is on


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SLUICE_PORT": "eighty"}, "SLUICE_PORT='eighty' is not an integer"),
        ({"SLUICE_WORKERS": "0"}, "SLUICE_WORKERS='0' must be at least 1"),
        ({"SLUICE_SCHEMA": "Robert'); drop"}, "SLUICE_SCHEMA="),
        ({"SLUICE_ETL_SCHEDULE": "sometimes"}, "SLUICE_ETL_SCHEDULE='sometimes'"),
        ({"SLUICE_TRUSTED_PROXIES": "10.0.0.0/8,nginx"}, "'nginx' is not an IP address"),
        ({"SLUICE_LINK_PREFIX": "/go/"}, "SLUICE_LINK_PREFIX='/go/' must be a path"),
        ({"SLUICE_LINK_PREFIX": "go"}, "SLUICE_LINK_PREFIX='go' must be a path"),
        ({"SLUICE_REQUIRE_KNOWN_SITES": "sometimes"}, "SLUICE_REQUIRE_KNOWN_SITES='sometimes' must be on or off"),
        (
            {"SLUICE_ADMIN_TOKEN": "adm", "SLUICE_INGEST_TOKENS": "api-1,adm"},
            "SLUICE_INGEST_TOKENS must not hold SLUICE_ADMIN_TOKEN",
        ),
    ],
)
def test_bad_values_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Settings.from_env(env)


def test_cli_reports_configuration_errors_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLUICE_PORT", "eighty")
    assert main(["migrate"]) == 2
    assert "SLUICE_PORT='eighty' is not an integer" in capsys.readouterr().err


def test_cli_reports_an_unreachable_database_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=2")
    assert main(["migrate"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sluice: cannot use PostgreSQL: ")
    assert "Traceback" not in err
