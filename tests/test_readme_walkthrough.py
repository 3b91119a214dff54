"""The README's walk-through, run as written against `sluice serve` on a fresh data folder.

The shell blocks marked `<!-- walk-through -->` run in order in one bash (so variables carry over),
from the checkout's root, as a new user would after `make run`; each block's stdout must match the
block marked `<!-- walk-through output -->` after it. Ids, times and dates are compared by shape
(the README shows examples), and `…` in the README stands for any text. The one change made to
what the README says: the test's serve listens on a free port, not 8000.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from serving import embedded_data_dir, start_serve

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
ADDRESS = "127.0.0.1:8000"

_BLOCK = re.compile(r"^<!-- walk-through( output)? -->\n```[a-z]*\n(.*?)^```$", re.MULTILINE | re.DOTALL)
_SHAPES = [
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)"), "<time>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "<date>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
]


@dataclass
class Step:
    commands: str
    expected: str | None = None


def walkthrough(text: str) -> list[Step]:
    steps: list[Step] = []
    for match in _BLOCK.finditer(text):
        is_output, body = match.group(1) is not None, match.group(2)
        if not is_output:
            steps.append(Step(body))
        else:
            if not steps or steps[-1].expected is not None:
                raise ValueError(f"README.md: an output block with no walk-through block before it:\n{body}")
            steps[-1].expected = body
    return steps


def shape(text: str) -> str:
    for pattern, placeholder in _SHAPES:
        text = pattern.sub(placeholder, text)
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def matches(expected: str, actual: str) -> bool:
    pattern = ".*?".join(re.escape(part) for part in shape(expected).split("…"))
    return re.fullmatch(pattern, shape(actual), re.DOTALL) is not None


def test_the_walkthrough_is_found_and_its_matching_works() -> None:
    steps = walkthrough(README.read_text())
    assert len(steps) >= 3
    assert all(step.expected is not None for step in steps)
    assert sum(step.commands.count(ADDRESS) for step in steps) == 1
    assert matches(
        '{"id":"019a4f7e-1c2d-7a3b-9e8f-5d6c7b8a9f01",…}', '{"id":"019b0000-0000-7000-8000-000000000000","x":1}'
    )
    assert not matches('{"count":2}', '{"count":3}')


@pytest.fixture
def data_dir() -> Iterator[Path]:
    with embedded_data_dir("sluice-readme-") as path:
        yield path


def test_the_readme_walkthrough_ends_with_sessions_and_daily_metrics(data_dir: Path, tmp_path: Path) -> None:
    assert (REPO / ".venv" / "bin" / "activate").exists(), "the walk-through runs in the checkout's .venv"
    steps = walkthrough(README.read_text())
    env = {"DATABASE_URL": None, "SLUICE_DATA_DIR": str(data_dir), "SLUICE_ADMIN_TOKEN": None}
    served = start_serve(env, tmp_path, cwd=REPO)  # what `make run` runs, on a free port
    try:
        marker = "@@ walk-through step done @@"
        script = "".join(f"{step.commands}\necho '{marker}'\n" for step in steps)
        shell_env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SLUICE_ADMIN_TOKEN")}
        shell_env |= {"SLUICE_DATA_DIR": str(data_dir), "PSQLRC": "/dev/null"}
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script.replace(ADDRESS, f"127.0.0.1:{served.port}")],
            cwd=REPO, env=shell_env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        stopped = served.stop(signal.SIGINT)  # "stop Sluice with Ctrl-C"
    assert result.returncode == 0, result.stderr
    outputs = result.stdout.split(f"{marker}\n")
    assert outputs[-1] == ""
    for step, output in zip(steps, outputs[:-1], strict=True):
        assert step.expected is not None
        assert matches(step.expected, output), (
            f"$ {step.commands}\nprinted:\n{output}\nthe README shows:\n{step.expected}"
        )
    assert stopped == 0
