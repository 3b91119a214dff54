"""Renders the ETL's SQL templates (`sql/etl/<job>.sql.j2`) and splits them into statements.

Jinja only shapes the SQL (`{% if single_day %}`); every value is a bound `%(name)s` parameter.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from functools import cache
from importlib.resources import files

from jinja2 import Environment, FunctionLoader, StrictUndefined

# Package data (sql/etl in the repository): found the same way in a wheel and a checkout.
ETL_DIR = files("sluice.sql") / "etl"
_SUFFIX = ".sql.j2"
# Statements end with ';' at the end of a line; the templates put no ';' anywhere else at line end.
_STATEMENT_END = re.compile(r";[ \t]*$", re.MULTILINE)
_COMMENT_OR_BLANK = re.compile(r"^\s*(--[^\n]*)?$")


class UnknownJob(ValueError):
    """No template `sql/etl/<job>.sql.j2`."""


@dataclass(frozen=True)
class Context:
    """Everything a template may branch on. Small on purpose: values go in as bound parameters."""

    single_day: bool = False  # daily tables for one given date, not for the days a batch touched
    rebuild: bool = False  # the batch is the whole log, loaded into emptied tables
    # a run's first attempt: no duplicate event_id check, stg_events' primary key proves it
    assume_unique_ids: bool = False
    # the database has postgresql-hll (migration 0013): the sketch jobs fill the visitor sketches
    sketches: bool = False
    # `sluice etl backfill` (with single_day): an incremental batch whose daily tables are recounted
    # whole, for the given days and every day the batch touched (affected_days)
    backfill: bool = False
    # an incremental batch of at least pipeline.BULK_EVENTS (an import): typed in parallel and its
    # scratch tables analysed, as a rebuild's
    bulk: bool = False


def _source(name: str) -> str | None:
    path = ETL_DIR / name
    return path.read_text(encoding="utf-8") if path.is_file() else None


@cache
def _environment() -> Environment:
    return Environment(
        loader=FunctionLoader(_source),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # SQL, not HTML; values never pass through Jinja
    )


def job_names() -> list[str]:
    return sorted(path.name.removesuffix(_SUFFIX) for path in ETL_DIR.iterdir() if path.name.endswith(_SUFFIX))


def render(job: str, context: Context | None = None) -> str:
    if job not in job_names():
        raise UnknownJob(f"no ETL job {job!r}; known jobs: {', '.join(job_names())}")
    return _environment().get_template(job + _SUFFIX).render(asdict(context or Context()))


def statements(sql_text: str) -> list[str]:
    """The statements of a rendered job, in order, without the ones that are only comments."""
    parts = (part.strip() for part in _STATEMENT_END.split(sql_text))
    return [part for part in parts if not all(_COMMENT_OR_BLANK.match(line) for line in part.splitlines())]
