"""Who reaches the reports: the read token, the admin token, a signed session cookie; nobody else."""

from __future__ import annotations

from dataclasses import replace

import pytest
from starlette.requests import Request

from sluice.reports.access import SESSION_COOKIE, SESSION_MAX_AGE_S, reader_of, sign_session, verify_session
from sluice.settings import ConfigError, Settings

SETTINGS = replace(Settings(), admin_token="adm1n", read_token="r3ad")
NOW = 1_800_000_000.0


def request_with(headers: dict[str, str]) -> Request:
    raw = [(name.lower().encode(), value.encode()) for name, value in headers.items()]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": raw, "query_string": b""})


@pytest.mark.parametrize(
    ("headers", "role"),
    [
        ({"Authorization": "Bearer r3ad"}, "read"),
        ({"Authorization": "bearer  adm1n "}, "admin"),
        ({"Authorization": "Bearer wrong"}, None),
        ({"Authorization": "Basic r3ad"}, None),
        ({}, None),
        ({"Cookie": f"{SESSION_COOKIE}=read.99999999999.forged"}, None),
    ],
)
def test_reader_of_a_bearer_token(headers: dict[str, str], role: str | None) -> None:
    assert reader_of(request_with(headers), SETTINGS) == role


def test_a_signed_cookie_names_its_role_until_it_expires() -> None:
    for role in ("read", "admin"):
        value = sign_session(SETTINGS, role, now=NOW)
        assert verify_session(SETTINGS, value, now=NOW) == role
        assert verify_session(SETTINGS, value, now=NOW + SESSION_MAX_AGE_S - 1) == role
        assert verify_session(SETTINGS, value, now=NOW + SESSION_MAX_AGE_S) is None


def test_reader_of_the_session_cookie() -> None:
    value = sign_session(SETTINGS, "read")
    assert reader_of(request_with({"Cookie": f"{SESSION_COOKIE}={value}"}), SETTINGS) == "read"
    # a wrong bearer token is not rescued by a good cookie: the request said who it is
    both = {"Cookie": f"{SESSION_COOKIE}={value}", "Authorization": "Bearer wrong"}
    assert reader_of(request_with(both), SETTINGS) is None


def test_a_tampered_cookie_or_one_signed_under_other_tokens_is_refused() -> None:
    value = sign_session(SETTINGS, "read", now=NOW)
    role, expires, signature = value.split(".")
    assert verify_session(SETTINGS, f"admin.{expires}.{signature}", now=NOW) is None
    assert verify_session(SETTINGS, f"{role}.{int(expires) + 1}.{signature}", now=NOW) is None
    assert verify_session(replace(SETTINGS, read_token="rotated"), value, now=NOW) is None
    assert verify_session(SETTINGS, "", now=NOW) is None
    assert verify_session(SETTINGS, "read..", now=NOW) is None


def test_no_session_for_a_role_without_a_token() -> None:
    only_admin = replace(SETTINGS, read_token="")
    with pytest.raises(ValueError, match="no token is configured for role 'read'"):
        sign_session(only_admin, "read")
    forged_before = sign_session(SETTINGS, "read", now=NOW)
    assert verify_session(only_admin, forged_before, now=NOW) is None


def test_the_read_token_comes_from_the_environment_and_must_differ_from_the_admin_token() -> None:
    assert Settings.from_env({"SLUICE_READ_TOKEN": "r"}).read_token == "r"
    with pytest.raises(ConfigError, match="SLUICE_READ_TOKEN must differ from SLUICE_ADMIN_TOKEN"):
        Settings.from_env({"SLUICE_READ_TOKEN": "same", "SLUICE_ADMIN_TOKEN": "same"})
