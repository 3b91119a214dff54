"""The dashboard's door: the sign-in form, the session cookie's flags, sign-out, and the redirects."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from http.cookies import SimpleCookie

import pytest
from starlette.testclient import TestClient

from sluice.app import create_app
from sluice.reports.access import SESSION_COOKIE, SESSION_MAX_AGE_S, sign_session, verify_session
from sluice.settings import Settings

READ, ADMIN = "r3ad-token", "adm1n-token"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture
def with_tokens(settings: Settings) -> Settings:
    return replace(settings, read_token=READ, admin_token=ADMIN)


@pytest.fixture
def client(with_tokens: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(with_tokens), follow_redirects=False) as client:
        yield client


def session_cookie(set_cookie: str) -> SimpleCookie:
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(set_cookie)
    assert list(cookie) == [SESSION_COOKIE]
    return cookie


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/", "/login?next=%2F"),
        ("/dashboard", "/login?next=%2Fdashboard"),
        ("/dashboard?site=blog&period=30d", "/login?next=%2Fdashboard%3Fsite%3Dblog%26period%3D30d"),
    ],
)
def test_without_credentials_a_page_sends_the_browser_to_the_login(
    client: TestClient, path: str, location: str
) -> None:
    response = client.get(path)
    assert response.status_code == 303
    assert response.headers["location"] == location


def test_the_login_form_is_labelled_and_carries_where_to_go_next(client: TestClient) -> None:
    response = client.get("/login?next=/dashboard%3Fsite%3Dblog")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    html = response.text
    assert '<label for="token">Token</label>' in html
    assert '<input id="token" name="token" type="password"' in html
    assert '<input type="hidden" name="next" value="/dashboard?site=blog">' in html
    assert '<link rel="icon" href="/favicon.svg" type="image/svg+xml">' in html


@pytest.mark.parametrize(("token", "role"), [(READ, "read"), (ADMIN, "admin")])
def test_a_right_token_sets_a_signed_strict_httponly_cookie(
    client: TestClient, with_tokens: Settings, token: str, role: str
) -> None:
    response = client.post("/login", content=f"token={token}&next=%2Fdashboard%3Fsite%3Dblog", headers=FORM)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard?site=blog"
    cookie = session_cookie(response.headers["set-cookie"])[SESSION_COOKIE]
    assert verify_session(with_tokens, cookie.value) == role
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "strict"
    assert cookie["path"] == "/"
    assert cookie["max-age"] == str(SESSION_MAX_AGE_S)
    assert cookie["secure"] == ""  # plain http: a Secure cookie would never come back


@pytest.mark.parametrize(
    ("peer", "headers", "secure"),
    [
        ("127.0.0.1", {"X-Forwarded-Proto": "https"}, True),  # nginx on loopback, a trusted proxy
        ("127.0.0.1", {"X-Forwarded-Proto": "http, https"}, True),  # the nearest proxy speaks last
        ("127.0.0.1", {"X-Forwarded-Proto": "http"}, False),
        ("203.0.113.9", {"X-Forwarded-Proto": "https"}, False),  # anyone may write the header
    ],
)
def test_the_cookie_is_secure_when_a_trusted_proxy_says_https(
    with_tokens: Settings, peer: str, headers: dict[str, str], secure: bool
) -> None:
    with TestClient(create_app(with_tokens), follow_redirects=False, client=(peer, 4711)) as client:
        response = client.post("/login", content=f"token={READ}", headers={**FORM, **headers})
    assert response.status_code == 303
    cookie = session_cookie(response.headers["set-cookie"])[SESSION_COOKIE]
    assert cookie["secure"] is (True if secure else "")


def test_the_cookie_is_secure_when_the_request_itself_is_https(with_tokens: Settings) -> None:
    with TestClient(create_app(with_tokens), base_url="https://stats.example", follow_redirects=False) as client:
        response = client.post("/login", content=f"token={READ}", headers=FORM)
    assert session_cookie(response.headers["set-cookie"])[SESSION_COOKIE]["secure"] is True


@pytest.mark.parametrize("token", ["", "wrong", READ + "x", f" {ADMIN[:-1]} "])
def test_a_wrong_token_shows_the_form_again_with_the_reason(client: TestClient, token: str) -> None:
    response = client.post("/login", content=f"token={token}&next=%2Fdashboard", headers=FORM)
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert '<p class="error" id="login-error" role="alert">That is neither the read token nor the admin token.</p>' in (
        response.text
    )
    assert '<input type="hidden" name="next" value="/dashboard">' in response.text


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_a_login_posted_from_another_site_is_refused(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/login", content=f"token={READ}", headers={**FORM, **headers})
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


def test_the_origin_check_ignores_the_port_nginx_drops_from_host(client: TestClient) -> None:
    # nginx passes `Host: stats.test` ($host) while the browser's Origin names the port it used.
    headers = {**FORM, "Host": "stats.test", "Origin": "http://stats.test:8080", "Sec-Fetch-Site": "same-origin"}
    response = client.post("/login", content=f"token={READ}", headers=headers)
    assert response.status_code == 303


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/", "/\\evil.example", "dashboard", "/ok\r\nX: y"]
)
def test_login_never_redirects_off_the_server(client: TestClient, target: str) -> None:
    response = client.post("/login", data={"token": READ, "next": target})
    assert response.status_code == 303
    assert response.headers["location"] == "/"


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b'{"token": "r3ad-token"}', {"Content-Type": "application/json"}),
        (b"token=" + b"x" * 5000, FORM),
        (b"token=\xff", FORM),
    ],
)
def test_a_body_that_is_not_the_form_is_a_400(client: TestClient, body: bytes, headers: dict[str, str]) -> None:
    response = client.post("/login", content=body, headers=headers)
    assert response.status_code == 400
    assert "Send the form as the sign-in page does." in response.text


def test_a_signed_in_visitor_is_sent_on_from_the_login_form(client: TestClient, with_tokens: Settings) -> None:
    client.cookies.set(SESSION_COOKIE, sign_session(with_tokens, "read"))
    response = client.get("/login?next=/dashboard%3Fsite%3Dblog")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard?site=blog"


def test_logout_clears_the_cookie(client: TestClient) -> None:
    client.post("/login", content=f"token={READ}", headers=FORM)
    assert client.get("/dashboard").status_code == 200
    response = client.post("/logout", headers={"Origin": "http://testserver"})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    cookie = session_cookie(response.headers["set-cookie"])[SESSION_COOKIE]
    assert cookie.value == ""
    assert cookie["max-age"] == "0"
    assert client.get("/dashboard").status_code == 303  # the cookie is gone from the client too


def test_logout_from_another_site_is_refused(client: TestClient, with_tokens: Settings) -> None:
    client.cookies.set(SESSION_COOKIE, sign_session(with_tokens, "read"))
    response = client.post("/logout", headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


def test_a_cookie_signed_before_a_token_changed_is_no_longer_a_session(with_tokens: Settings) -> None:
    old = sign_session(with_tokens, "read")
    with TestClient(create_app(replace(with_tokens, read_token="rotated")), follow_redirects=False) as client:
        client.cookies.set(SESSION_COOKIE, old)
        assert client.get("/dashboard").status_code == 303


def test_without_any_token_configured_the_dashboard_says_how_to_enable_it(settings: Settings) -> None:
    with TestClient(create_app(settings), follow_redirects=False) as client:
        for response in (client.get("/dashboard"), client.get("/login"), client.post("/login", data={"token": "x"})):
            assert response.status_code == 403
            assert "set SLUICE_READ_TOKEN (or SLUICE_ADMIN_TOKEN) and restart Sluice" in response.text


def test_the_favicon_is_served(client: TestClient) -> None:
    for path in ("/favicon.svg", "/favicon.ico"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/svg+xml"
        assert response.content.startswith(b'<svg xmlns="http://www.w3.org/2000/svg"')
