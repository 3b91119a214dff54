"""`sluice links add|list|disable`: short links from a shell (collector/links.py does the work).

Exit codes: 0 done, 1 the code is taken (add) or the site has no such code (disable), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import AbstractContextManager
from typing import Any

import psycopg

from sluice.collector import links
from sluice.db import command_connection
from sluice.settings import Settings


def _connection(settings: Settings) -> AbstractContextManager[psycopg.Connection]:
    return command_connection(settings, "sluice-links")


def _show(link: links.Link, prefix: str) -> str:
    state = "disabled" if link.disabled else "active"
    return f"{link.site_id}\t{prefix}/{link.short_code}\t{link.target_url}\t{state}\t{link.created_at.isoformat()}"


def _cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    try:
        links.check(args.site, args.code, args.url)
    except links.LinkError as exc:
        print(f"sluice links: {exc.message}", file=sys.stderr)
        return 2
    with _connection(settings) as conn:
        link = links.add(conn, args.site, args.code, args.url)
    if link is None:
        print(f"sluice links: short code {args.code!r} is taken (codes are unique across sites)", file=sys.stderr)
        return 1
    print(_show(link, settings.link_prefix))
    return 0


def _cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    with _connection(settings) as conn:
        for link in links.list_links(conn, args.site):
            print(_show(link, settings.link_prefix))
    return 0


def _cmd_disable(args: argparse.Namespace, settings: Settings) -> int:
    with _connection(settings) as conn:
        link = links.disable(conn, args.site, args.code)
    if link is None:
        print(f"sluice links: site {args.site!r} has no short code {args.code!r}", file=sys.stderr)
        return 1
    print(_show(link, settings.link_prefix))
    return 0


def add_links_commands(commands: Any) -> None:
    group = commands.add_parser("links", help="short links: GET /l/{code} redirects and records a click")
    sub = group.add_subparsers(dest="links_command", required=True)
    add = sub.add_parser("add", help="add a short link (the code is unique across sites)")
    add.add_argument("site")
    add.add_argument("code")
    add.add_argument("url", help="the target: an http:// or https:// URL")
    add.set_defaults(handler=_cmd_add)
    listing = sub.add_parser("list", help="the links, of one site or all (tab-separated)")
    listing.add_argument("site", nargs="?")
    listing.set_defaults(handler=_cmd_list)
    off = sub.add_parser("disable", help="disable a link: it answers 404 and records nothing from then on")
    off.add_argument("site")
    off.add_argument("code")
    off.set_defaults(handler=_cmd_disable)
