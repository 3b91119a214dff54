"""The shipped nginx.conf in front of a running Sluice: what nginx itself answers, and what it passes on."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

from .conftest import ADMIN_TOKEN
from .harness import REPO, Client, fetch, free_port
from .netns import Namespace
from .nginx_conf import NGINX_CONF, Nginx, nginx, nginx_binary, render_nginx_conf


def event(**fields: object) -> dict[str, object]:
    return {"eventType": "pageview", "siteId": "e2e-site", "eventId": str(uuid.uuid4()), "path": "/", **fields}


def request_from(ns: Namespace, url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """GET `url` from inside the namespace: the client nginx sees is at `ns.client_ip`."""
    script = (
        "import json, sys, urllib.request, urllib.error\n"
        "req = urllib.request.Request(sys.argv[1], headers=json.loads(sys.argv[2]))\n"
        "try:\n"
        "    r = urllib.request.urlopen(req, timeout=10); print(r.status); print(r.read().decode())\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code); print(e.read().decode())\n"
    )
    done = ns.run(sys.executable, "-c", script, url, json.dumps(headers or {}))
    assert done.returncode == 0, done.stderr
    status, _, body = done.stdout.partition("\n")
    return int(status), body


def test_rendering_changes_only_the_marked_lines(tmp_path: Path) -> None:
    port = free_port()
    rendered = render_nginx_conf(
        listen=[f"127.0.0.1:{port}", f"127.0.0.2:{port}"],
        upstream="127.0.0.1:9000",
        tracker_root=tmp_path / "tracker",
        prefix=tmp_path,
    ).splitlines()
    shipped = NGINX_CONF.read_text().splitlines()
    assert len(rendered) == len(shipped)
    changed = [(a, b) for a, b in zip(shipped, rendered, strict=True) if a != b]
    assert all("# rendered by tests" in a for a, _ in changed)
    assert len(changed) == 7
    assert f"        listen 127.0.0.1:{port}; listen 127.0.0.2:{port};" in rendered
    assert "        server 127.0.0.1:9000;" in rendered
    # And it is valid nginx (nginx -t also binds the addresses and opens the log files).
    conf = tmp_path / "nginx.conf"
    conf.write_text("\n".join(rendered))
    check = subprocess.run([nginx_binary(), "-t", "-p", str(tmp_path), "-c", str(conf)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_tracker_is_served_gzipped_with_long_caching_and_no_version(front: Nginx) -> None:
    response = fetch("GET", f"{front.url()}/sluice.js", headers={"Accept-Encoding": "gzip"})
    assert response.status == 200
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=86400, stale-while-revalidate=604800"
    assert response.headers["server"] == "nginx"  # server_tokens off: no version
    assert response.headers["etag"]
    # The minified build when there is one, else the readable source.
    built = REPO / "tracker" / "dist" / "sluice.min.js"
    expected = built if built.exists() else REPO / "tracker" / "sluice.js"
    assert gzip.decompress(response.body) == expected.read_bytes()
    assert len(response.body) < 3 * 1024 or not built.exists()


def test_a_body_over_1_mib_is_refused_by_nginx_and_one_under_it_lands(front: Nginx, db: psycopg.Connection) -> None:
    too_big = b'{"events": [' + b" " * (1024 * 1024) + b"]}"
    response = fetch("POST", f"{front.url()}/collect", too_big, {"Content-Type": "text/plain"})
    assert response.status == 413
    assert response.json()["error"] == "body_too_large"
    assert "client intended to send too large body" in front.error_log()  # nginx's refusal, not Sluice's

    # 100 events of ~10 KB each: just under the limit, so nginx passes it and Sluice stores it all.
    padding = "x" * 10_000
    batch = {"events": [event(props={"padding": padding}) for _ in range(100)]}
    body = json.dumps(batch).encode()
    assert 1_000_000 < len(body) < 1024 * 1024
    response = fetch("POST", f"{front.url()}/collect", body, {"Content-Type": "text/plain"})
    assert response.status == 202, response.body
    assert db.execute("select count(*) from events").fetchone() == (100,)


def test_a_burst_over_the_rate_limit_gets_429_and_the_rest_lands(front: Nginx, db: psycopg.Connection) -> None:
    statuses: dict[str, int] = {}
    with Client(front.url()) as client:  # one kept-alive connection, requests back to back
        for _ in range(150):
            one = event()
            response = client.post_json("/collect", one)
            statuses[str(one["eventId"])] = response.status
            if response.status == 429:
                assert response.json()["error"] == "rate_limited"
    accepted = {eid for eid, status in statuses.items() if status == 202}
    refused = [eid for eid, status in statuses.items() if status == 429]
    assert len(accepted) + len(refused) == 150
    assert len(accepted) >= 51  # the burst of 50, plus the one the rate allows at once
    assert len(refused) >= 30
    stored = {str(r[0]) for r in db.execute("select event_id from events")}
    assert stored == accepted


def test_control_routes_refuse_clients_outside_private_networks(front: Nginx, netns: Namespace) -> None:
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    outside = front.url(netns.host_ip)
    # From the namespace (a public-looking address): refused by nginx, token or not, and a forged
    # X-Forwarded-For changes nothing (nginx goes by the connection's address).
    for path in ["/etl/status", "/etl/runs", "/events/recent", "/events/count", "/metrics"]:
        status, body = request_from(netns, outside + path, {**auth, "X-Forwarded-For": "10.0.0.1"})
        assert (status, json.loads(body)["error"]) == (403, "forbidden_network"), path
    # The same client reaches the public routes ...
    status, _ = request_from(netns, outside + "/health")
    assert status == 200
    # ... and loopback reaches the control routes, where Sluice checks the token.
    assert fetch("GET", f"{front.url()}/etl/status", headers=auth).status == 200
    refused = fetch("GET", f"{front.url()}/etl/status", headers={"Authorization": "Bearer wrong"})
    assert (refused.status, refused.json()["error"]) == (401, "unauthorized")
    scraped = fetch("GET", f"{front.url()}/metrics", headers=auth)
    assert scraped.status == 200
    assert b"sluice_events_accepted_total" in scraped.body


@pytest.mark.parametrize("path", ["/_sluice/403.json", "/_sluice/413.json"])
def test_nginx_error_bodies_are_not_routes(front: Nginx, path: str) -> None:
    # `internal`: asked for directly, they are not found (nginx's own 404, in Sluice's shape).
    response = fetch("GET", front.url() + path)
    assert (response.status, response.json()["error"]) == (404, "not_found")


def test_with_sluice_down_nginx_answers_503_in_sluice_shape(tmp_path: Path) -> None:
    nothing_there = f"127.0.0.1:{free_port()}"
    with nginx(addresses=["127.0.0.1"], upstream=nothing_there, prefix=tmp_path / "nginx") as down:
        response = fetch("POST", f"{down.url()}/collect", json.dumps(event()).encode(), {"Content-Type": "text/plain"})
    assert response.status == 503
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "upstream_unavailable", "message": "Sluice is not answering; retry later"}
