"""Fixtures for the end-to-end tests: each test gets its own database (the `settings` fixture),
its own `sluice serve`, and its own nginx (so one test's rate limit never leaks into the next);
the network namespace and ChromeDriver are shared by the session."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.remote.webdriver import WebDriver

from sluice.settings import Settings

from .chromium import CHROMIUM_FLAGS, chromedriver_in
from .harness import stop
from .netns import Namespace, namespace
from .nginx_conf import Nginx, nginx
from .sluice_server import Sluice, sluice_serve

ADMIN_TOKEN = "e2e-admin-token"
READ_TOKEN = "e2e-read-token"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chromium_prefs(prefs): Chromium preferences for the `browser` fixture")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def netns() -> Iterator[Namespace]:
    with namespace() as ns:
        yield ns


@pytest.fixture
def sluice_env(settings: Settings) -> dict[str, str]:
    """What `sluice serve` is started with: the test's database, and the token."""
    return {
        "DATABASE_URL": settings.database_url,
        "SLUICE_SCHEMA": settings.schema,
        "SLUICE_ETL_SCHEDULE": "off",  # the test runs the ETL itself, when it has what it needs
        "SLUICE_ADMIN_TOKEN": ADMIN_TOKEN,
        "SLUICE_READ_TOKEN": READ_TOKEN,
    }


@pytest.fixture
def sluice_server(sluice_env: dict[str, str], tmp_path: Path) -> Iterator[Sluice]:
    with sluice_serve(sluice_env, tmp_path) as server:
        yield server


@pytest.fixture
def front(netns: Namespace, sluice_server: Sluice, tmp_path: Path) -> Iterator[Nginx]:
    """nginx with the shipped nginx.conf, on loopback and on the namespace's veth."""
    with nginx(
        addresses=["127.0.0.1", netns.host_ip],
        upstream=f"127.0.0.1:{sluice_server.port}",
        prefix=tmp_path / "nginx",
    ) as server:
        yield server


@pytest.fixture(scope="session")
def chromedriver_url(netns: Namespace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = chromedriver_in(netns, tmp_path_factory.mktemp("chromedriver"))
    try:
        yield url
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def person_user_agent() -> str:
    """What this Chromium sends when it has a window. Headless, it calls itself HeadlessChrome, which
    Sluice rightly counts as a bot; these tests play a person, so they present the headed string."""
    version = subprocess.run([CHROMIUM, "--version"], capture_output=True, text=True, check=True).stdout
    match = re.search(r"\b(\d+)\.\d+\.\d+\.\d+\b", version)
    assert match, f"cannot read a version from {CHROMIUM} --version: {version!r}"
    # Chromium's reduced user agent: only the major version is real.
    return (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/{match.group(1)}.0.0.0 Safari/537.36"
    )


@pytest.fixture
def browser(
    request: pytest.FixtureRequest, netns: Namespace, chromedriver_url: str, person_user_agent: str, tmp_path: Path
) -> Iterator[WebDriver]:
    """Headless Chromium in the namespace; `*.test` host names all lead to nginx's side of the veth.
    Chromium preferences come from a `chromium_prefs` mark, e.g. to turn on Do-Not-Track."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [
        *CHROMIUM_FLAGS,
        f"--user-agent={person_user_agent}",
        f"--user-data-dir={tmp_path / 'chromium'}",  # a fresh profile: no visitor id yet
        f"--host-resolver-rules=MAP *.test {netns.host_ip}",
    ]:
        options.add_argument(flag)
    # The page's console (errors included), read with `browser_log(driver)`.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    mark = request.node.get_closest_marker("chromium_prefs")
    if mark:
        options.add_experimental_option("prefs", mark.args[0])
    driver = webdriver.Remote(command_executor=chromedriver_url, options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
