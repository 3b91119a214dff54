"""The wheel a user installs: built from what the Dockerfile's build stage copies, installed into a
fresh venv, and run from a directory that is not the checkout.

What this proves: the wheel alone carries the code and the SQL (migrations and ETL templates), it
puts nothing but `sluice` into site-packages, and its declared dependencies are enough to migrate,
render and serve. The fresh venv sees the wheel and exactly the distributions its `Requires-Dist`
names (transitively, extras and markers evaluated), linked from the project's .venv rather than
downloaded: the same versions as the suite uses, so it says nothing about other versions or about
what PyPI serves. The build itself runs pip's isolated build (setuptools from the package index).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from email.parser import Parser
from importlib.metadata import distribution
from pathlib import Path

import psycopg
import pytest
from databases import empty_database, table_names
from e2e.harness import fetch
from packaging.requirements import Requirement
from serving import start_serve

from sluice.migrations import discover
from sluice.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def build_stage_copies(dockerfile: str) -> list[tuple[list[str], str]]:
    """The `COPY sources... destination` lines of the Dockerfile's first stage, in order."""
    stages = re.split(r"(?m)^FROM\s", dockerfile)
    copies = []
    for line in re.findall(r"(?m)^COPY\s+(.+)$", stages[1]):
        *sources, destination = line.split()
        copies.append((sources, destination))
    return copies


def copy_build_context(target: Path) -> None:
    """What `docker build` copies into the build stage, copied the way COPY does."""
    for sources, destination in build_stage_copies((REPO / "Dockerfile").read_text()):
        into = target / destination
        for source in sources:
            path = REPO / source
            if path.is_dir():  # COPY dir/ dest/ copies the folder's contents into dest
                shutil.copytree(path, into, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                into.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, into / path.name)


def declared_dependencies(metadata: str) -> list[Path]:
    """The top-level entries (packages, modules, dist-info folders) of every distribution the
    `Requires-Dist` lines need, transitively, as installed in this suite's venv."""
    wanted = [(Requirement(line), "") for line in Parser().parsestr(metadata).get_all("Requires-Dist") or []]
    seen: set[str] = set()
    entries: set[Path] = set()
    while wanted:
        requirement, extra = wanted.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        dist = distribution(requirement.name)
        for requested in ("", *requirement.extras):
            key = f"{dist.metadata['Name'].lower()}[{requested}]"
            if key in seen:
                continue
            seen.add(key)
            wanted.extend((Requirement(line), requested) for line in dist.requires or [])
        for file in dist.files or []:
            top = file.parts[0]
            if top not in ("..", "__pycache__"):
                entries.add(Path(str(dist.locate_file(top))))
    return sorted(entries)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, installed alone into a fresh venv; yields the venv."""
    tmp = tmp_path_factory.mktemp("wheel")
    copy_build_context(tmp / "src")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "--wheel-dir", tmp / "wheels", tmp / "src"], check=True)
    (wheel,) = (tmp / "wheels").glob("sluice-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True)
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", python, "install", "--quiet", "--no-deps", "--no-index", wheel], check=True)
    return venv


def sql_files(root: Path) -> set[str]:
    """The migrations and ETL templates under `root`, as paths relative to it."""
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.suffix in (".sql", ".j2")}


def site_packages(venv: Path) -> Path:
    (site,) = (venv / "lib").glob("python3.*/site-packages")
    return site


@pytest.fixture(scope="module")
def venv(installed: Path) -> Path:
    """The fresh venv, made able to run: its dependencies, and nothing else, on its path."""
    site = site_packages(installed)
    if not (site / "_declared_dependencies.pth").exists():
        deps = installed.parent / "dependencies"
        deps.mkdir()
        metadata = next(site.glob("sluice-*.dist-info")) / "METADATA"
        for entry in declared_dependencies(metadata.read_text()):
            (deps / entry.name).symlink_to(entry)
        (site / "_declared_dependencies.pth").write_text(f"{deps}\n")
    return installed


def run(venv: Path, *args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(venv / "bin" / "sluice"), *args], capture_output=True, text=True, env=env, cwd=cwd)


def outside_env(database_url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    return {**env, "DATABASE_URL": database_url, "SLUICE_DATA_DIR": str(data_dir), "SLUICE_ETL_SCHEDULE": "off"}


def test_the_wheel_holds_only_the_sluice_package_and_all_the_sql(installed: Path) -> None:
    site = site_packages(installed)
    assert sorted(p.name for p in site.iterdir()) == ["sluice", "sluice-0.1.0.dist-info"]
    assert sql_files(site / "sluice" / "sql") == sql_files(REPO / "sql")
    assert len(sql_files(REPO / "sql")) > 10


def test_installed_from_the_wheel_it_migrates_renders_and_serves(
    venv: Path, postgresql: psycopg.Connection, settings: Settings, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    python = str(venv / "bin" / "python")
    where = subprocess.run(
        [python, "-c", "import sluice.app, sluice.cli; print(sluice.__file__)"],
        capture_output=True, text=True, check=True, cwd=elsewhere,
    )  # fmt: skip
    assert where.stdout.strip() == str(site_packages(venv) / "sluice" / "__init__.py")

    with empty_database(postgresql) as url:
        env = outside_env(url, tmp_path / "data")
        migrated = run(venv, "migrate", env=env, cwd=elsewhere)
        assert (migrated.returncode, migrated.stderr) == (0, "")
        assert migrated.stdout == f"applied: {', '.join(m.name for m in discover())}\n"
        assert table_names(url, "sluice") == table_names(settings.database_url, "sluice")
        assert {"events", "sessions", "daily_metrics"} <= table_names(url, "sluice")

        served = start_serve(env, elsewhere, sluice=[str(venv / "bin" / "sluice")])
        try:
            health = fetch("GET", f"{served.url}/health")
        finally:
            assert served.stop(signal.SIGTERM) == 0
        assert (health.status, health.json()["database"]) == (200, "connected")

    rendered = run(venv, "etl", "render", "sessions", env=env, cwd=elsewhere)
    assert rendered.returncode == 0
    assert "-- sessions: one row per session" in rendered.stdout
    assert "insert into sessions" in rendered.stdout


def test_an_install_without_its_migrations_fails_loudly(
    venv: Path, postgresql: psycopg.Connection, tmp_path: Path
) -> None:
    migrations = site_packages(venv) / "sluice" / "sql" / "migrations"
    aside = tmp_path / "migrations-aside"
    migrations.rename(aside)
    try:
        with empty_database(postgresql) as url:
            result = run(venv, "migrate", env=outside_env(url, tmp_path / "data"), cwd=tmp_path)
            assert (result.returncode, result.stdout) == (1, "")
            assert result.stderr == (
                f"sluice: no migration files in {migrations}: this installation of Sluice is incomplete\n"
            )
            with psycopg.connect(url) as conn:
                assert conn.execute("select count(*) from pg_namespace where nspname = 'sluice'").fetchone() == (0,)
    finally:
        aside.rename(migrations)
