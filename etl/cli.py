"""`sluice etl …` subcommands. (Skeleton: filled in by the ETL work.)"""

from __future__ import annotations

import argparse
from typing import Any


def add_etl_commands(commands: argparse._SubParsersAction[Any]) -> None:
    commands.add_parser("etl", help="drive the ETL")
