"""Headless Chromium, driven through ChromeDriver running inside the browser's namespace."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from selenium.webdriver.remote.webdriver import WebDriver

from .harness import fetch, free_port, wait_until
from .netns import Namespace

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",  # as root
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromedriver_in(ns: Namespace, directory: Path) -> tuple[subprocess.Popen[bytes], str]:
    """ChromeDriver (and so Chromium) inside the namespace, reachable from here at its address."""
    binary = shutil.which("chromedriver")
    if not binary:
        raise RuntimeError("chromedriver is not installed: run scripts/ensure-system-deps.sh")
    port = free_port()
    proc = ns.popen(binary, f"--port={port}", f"--allowed-ips={ns.host_ip}", log=directory / "chromedriver.log")
    url = f"http://{ns.client_ip}:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"chromedriver exited with {proc.returncode}")
        try:
            return fetch("GET", f"{url}/status").status == 200
        except OSError:
            return False

    wait_until(up, "chromedriver to answer")
    return proc, url


def browser_log(driver: WebDriver) -> list[dict[str, Any]]:
    """The console's entries since the last call (`goog:loggingPrefs` must ask for them): each with
    `level` (SEVERE for errors, failed loads included), `message`, `source`."""
    entries: list[dict[str, Any]] = driver.execute("getLog", {"type": "browser"})["value"]
    return entries
