"""A small City database in the MaxMind DB format, written by the test itself (mmdb-writer): the
layout of GeoLite2-City / DB-IP City records, for a few documentation and public networks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmdb_writer import MMDBWriter
from netaddr import IPSet

# network -> (country, subdivision ISO code or None, English city name or None)
PLACES: dict[str, tuple[str, str | None, str | None]] = {
    "8.8.8.0/24": ("DE", "BE", "Berlin"),  # (a public address: private ones are never looked up)
    "9.9.9.0/24": ("FR", "IDF", "Paris"),
    "1.1.1.0/24": ("AU", None, None),  # country only, as a Country database or an unknown city
    "2001:4860::/32": ("CH", "ZH", "Zürich"),
}


def _record(country: str, subdivision: str | None, city: str | None) -> dict[str, Any]:
    record: dict[str, Any] = {
        "country": {"iso_code": country, "names": {"en": country, "de": country}},
        "registered_country": {"iso_code": country},
    }
    if subdivision is not None:
        record["subdivisions"] = [{"iso_code": subdivision, "names": {"en": subdivision}}]
    if city is not None:
        record["city"] = {"geoname_id": 1, "names": {"en": city, "fr": city + " (fr)"}}
    return record


def write_city_db(path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City", languages=["en"])
    for network, place in PLACES.items():
        writer.insert_network(IPSet([network]), _record(*place))
    writer.to_db_file(str(path))
    return path
