"""mypy over the package as it is installed: `sluice.collector` from collector/, and so on.

mypy cannot follow setuptools' editable-install finder, which maps the repository's top-level
folders into `sluice` (pyproject.toml, [tool.setuptools.package-dir]). So this builds that
package's shape (copies of the files) under .venv/typecheck, runs mypy there with the project's
configuration, and prints each error under its file's path in the repository.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VIEW = ROOT / ".venv" / "typecheck"


def build_view() -> dict[str, str]:
    """The view's folders, package path -> repository path (longest first, for rewriting output)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_dir: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    shutil.rmtree(VIEW, ignore_errors=True)
    mapping: dict[str, str] = {}
    for package, folder in sorted(package_dir.items()):
        target = VIEW / package.replace(".", "/")
        target.mkdir(parents=True, exist_ok=True)
        for source in (ROOT / folder).glob("*.py"):
            shutil.copy2(source, target / source.name)
        mapping[str(target.relative_to(VIEW)) + "/"] = folder.rstrip("/") + "/"
    shutil.copytree(ROOT / "tests", VIEW / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    mapping["tests/"] = "tests/"
    return dict(sorted(mapping.items(), key=lambda item: -len(item[0])))


def main() -> int:
    mapping = build_view()
    command = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "sluice", "tests"]
    env = {**os.environ, "MYPY_CACHE_DIR": str(ROOT / ".venv" / "typecheck-cache")}
    result = subprocess.run(command, cwd=VIEW, capture_output=True, text=True, env=env, check=False)
    for line in (result.stdout + result.stderr).splitlines():
        for view_path, repo_path in mapping.items():
            if line.startswith(view_path):
                line = repo_path + line.removeprefix(view_path)
                break
        print(line)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
