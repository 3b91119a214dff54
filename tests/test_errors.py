"""One vocabulary of `error` codes (sluice/errors.py): the code, nginx.conf and the README use only it."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from sluice.app import create_app
from sluice.errors import CODES, status_of
from sluice.http import EXCEPTION_HANDLERS, error_response
from sluice.settings import Settings

REPO = Path(__file__).resolve().parent.parent
SOURCES = sorted(path for folder in ("collector", "etl", "reports", "sluice") for path in (REPO / folder).rglob("*.py"))
# Calls whose first argument is an error code; each checks it against the vocabulary when it runs.
CODE_TAKERS = {"Rejection", "error_response", "BadParameter", "status_of"}
# The only places that put a code into a body themselves.
BODY_BUILDERS = {("sluice/http.py", "error_response"), ("collector/rejections.py", "as_json")}


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def _codes_and_bodies(path: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """The literal codes passed to CODE_TAKERS, and the functions holding a dict literal with an "error" key."""
    tree = ast.parse(path.read_text(), filename=str(path))
    codes = [
        (node.lineno, node.args[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and _name(node.func) in CODE_TAKERS and node.args
        if isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
    ]
    bodies = [
        (node.lineno, function.name)
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
        for node in ast.walk(function)
        if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "error" for k in node.keys)
    ]
    return codes, bodies


def test_every_code_the_sources_use_is_declared() -> None:
    used: set[str] = set()
    for path in SOURCES:
        where = str(path.relative_to(REPO))
        codes, bodies = _codes_and_bodies(path)
        for line, code in codes:
            assert code in CODES, f"{where}:{line}: error code {code!r} is not declared in sluice/errors.py"
            used.add(code)
        for line, function in set(bodies):
            assert (where, function) in BODY_BUILDERS, f"{where}:{line}: an error body built outside error_response"
    assert len(used) > 15  # the scan does find them: a change that hides every call fails here


def test_an_undeclared_code_cannot_be_answered() -> None:
    with pytest.raises(ValueError, match="'invalid_parameter' is not declared"):
        error_response("invalid_parameter", "old code")
    assert status_of("rate_limited") == 429


NGINX_BODY = re.compile(r"location = (/_sluice/\S+) \{ return (\d{3}) '(\{.*\})\\n'; \}")
NGINX_ERROR_PAGE = re.compile(r"^\s*error_page ((?:\d{3} )+)(?:=(\d{3}) )?(\S+);", re.M)


def test_nginx_answers_its_own_errors_with_declared_codes() -> None:
    conf = (REPO / "nginx.conf").read_text()
    bodies = {path: (int(status), json.loads(body)) for path, status, body in NGINX_BODY.findall(conf)}
    assert len(bodies) == conf.count("location = /_sluice/")  # every body is of the shape read here
    for path, (status, body) in bodies.items():
        assert set(body) == {"error", "message"}, path
        assert body["error"] in CODES, f"nginx.conf {path}: {body['error']!r} is not declared in sluice/errors.py"
        assert status == status_of(body["error"]), path
    pages = NGINX_ERROR_PAGE.findall(conf)
    assert {uri for _, _, uri in pages} == set(bodies)  # every page has a body, every body a page
    # nginx answers a page with the status it met (`error_page 413 ...` stays 413) unless `=NNN`
    # says otherwise: either way it must be the status of the body's code.
    answered = {int(s): (int(override or s), uri) for codes, override, uri in pages for s in codes.split()}
    assert set(answered) == {403, 404, 413, 429, 502, 503, 504}
    for met, (status, uri) in answered.items():
        assert status == bodies[uri][0], f"nginx.conf answers {met} with {status}, but {uri} is a {bodies[uri][0]}"


README_ROW = re.compile(r"^\| (\d{3}) \| `([a-z_]+)` \| (.*) \|$", re.M)


def test_the_readme_table_is_the_vocabulary() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    rows = [(int(status), code, meaning) for status, code, meaning in README_ROW.findall(section)]
    assert rows == [(c.status, code, c.meaning) for code, c in CODES.items()]
    assert len(README_ROW.findall(readme)) == len(rows)  # one table, nowhere else


def test_unknown_paths_and_methods_answer_in_the_error_shape(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        missing = client.get("/nothing-here")
        wrong_method = client.delete("/collect")
    assert (missing.status_code, missing.json()) == (
        404,
        {"error": "not_found", "message": "no such path: /nothing-here"},
    )
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"] == "method_not_allowed"
    assert set(wrong_method.headers["allow"].split(", ")) == {"GET", "HEAD", "POST", "OPTIONS"}


def test_a_bug_answers_500_in_the_error_shape() -> None:
    async def broken(request: Request) -> Response:
        raise RuntimeError("a bug")

    app = Starlette(routes=[Route("/broken", broken)], exception_handlers=EXCEPTION_HANDLERS)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/broken")
    assert response.status_code == 500
    assert response.json() == {
        "error": "internal_error",
        "message": "Sluice failed to answer this request; its log says why",
    }
