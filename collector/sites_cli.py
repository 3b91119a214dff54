"""`sluice sites add|list|rotate-key|remove` (collector/sites.py does the work).

Exit codes: 0 done, 1 the site exists (add) or does not (rotate-key, remove), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AbstractContextManager
from typing import Any

import orjson
import psycopg

from sluice.collector import sites
from sluice.db import command_connection
from sluice.settings import Settings


def _connection(settings: Settings) -> AbstractContextManager[psycopg.Connection]:
    return command_connection(settings, "sluice-sites")


def _line(site: sites.Site) -> str:
    origins = ",".join(site.allowed_origins) or "-"
    return f"{site.site_id}\t{site.name}\t{origins}\t{site.timezone}\t{site.created_at.isoformat()}"


def _cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    try:
        sites.check(args.site, args.origin, args.timezone)
    except sites.SiteError as exc:
        print(f"sluice sites: {exc.message}", file=sys.stderr)
        return 2
    with _connection(settings) as conn:
        made = sites.add(conn, args.site, args.name, args.origin, args.timezone)
    if made is None:
        print(
            f"sluice sites: site {args.site!r} exists; `sluice sites rotate-key {args.site}` makes a new key",
            file=sys.stderr,
        )
        return 1
    site, write_key = made
    if args.json:
        print(orjson.dumps({"site_id": site.site_id, "write_key": write_key}).decode())
    else:
        print(_line(site))
        print(f"write key (shown only now; Sluice keeps only its hash): {write_key}")
    return 0


def _cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    with _connection(settings) as conn:
        listed = sites.list_sites(conn)
    if args.json:
        print(orjson.dumps([site.as_json() for site in listed]).decode())
    else:
        for site in listed:
            print(_line(site))
    return 0


def _cmd_rotate(args: argparse.Namespace, settings: Settings) -> int:
    with _connection(settings) as conn:
        write_key = sites.rotate_key(conn, args.site)
    if write_key is None:
        print(f"sluice sites: no site {args.site!r}", file=sys.stderr)
        return 1
    if args.json:
        print(orjson.dumps({"site_id": args.site, "write_key": write_key}).decode())
    else:
        print(f"new write key of {args.site} (the old ones no longer work; shown only now): {write_key}")
    return 0


def _cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    with _connection(settings) as conn:
        removed = sites.remove(conn, args.site)
    if not removed:
        print(f"sluice sites: no site {args.site!r}", file=sys.stderr)
        return 1
    print(f"removed {args.site} and its write keys (its events stay)")
    return 0


def add_sites_commands(commands: Any) -> None:
    group = commands.add_parser("sites", help="sites and their write keys (Segment, RudderStack, PostHog)")
    sub = group.add_subparsers(dest="sites_command", required=True)
    add = sub.add_parser("add", help="add a site and print its first write key (shown only then)")
    add.add_argument("site", help="the site id its events carry")
    add.add_argument("--name", help="a human name (default: the site id)")
    add.add_argument(
        "--origin", action="append", default=[], help="a browser origin allowed to send its events (repeatable)"
    )
    add.add_argument("--timezone", default="UTC", help="its IANA time zone (default UTC)")
    add.add_argument("--json", action="store_true", help='print {"site_id": ..., "write_key": ...}')
    add.set_defaults(handler=_cmd_add)
    listing = sub.add_parser("list", help="the sites (tab-separated: id, name, origins, time zone, added)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_cmd_list)
    rotate = sub.add_parser("rotate-key", help="a new write key for the site; its old keys stop working")
    rotate.add_argument("site")
    rotate.add_argument("--json", action="store_true")
    rotate.set_defaults(handler=_cmd_rotate)
    remove = sub.add_parser("remove", help="remove the site and its keys (its events stay)")
    remove.add_argument("site")
    remove.set_defaults(handler=_cmd_remove)
