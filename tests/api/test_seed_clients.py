"""Browsers as clients, over real HTTP: JSONP on the seed's endpoints (the seed GUI's way) and
opt-in CORS with its preflight.  The answers are checked by running nothing but the wire: the
script body must be exactly `/**/NAME(<plain JSON body>);`.  tests/ui/test_seed_gui.py runs the
same calls in a real browser against the lab."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.api import jsonp, seed
from reconciler.api.server import ApiServer, serve
from reconciler.config import load_config
from reconciler.errors import SpecError

from .snapshots import world

MUTATING = {
    "/vm/create?name=x&instance_type=1&image_id=2": "vmid",
    "/vm/destroy?vmid=100": "status",
    "/volume/create?name=v&size=1": "volumeid",
    "/volume/destroy?volumeid=500": "status",
    "/volume/attach?vmid=100&volumeid=501": "status",
    "/volume/detach?volumeid=500": "status",
}
QUERIES = {  # path: its status in the plain mode
    "/vm/query?vmid=100": 200,
    "/vm/query?vmid=999": 404,
    "/vm/types": 200,
    "/image/list": 200,
    "/volume/query?volumeid=500": 200,
    "/volume/query?volumeid=7": 404,
}
HOSTILE = ("alert(1)//", "<script>", "a" * 65, "", "a..b", "1abc", "new", "x;y", "a.b(", "é")
ORIGIN = "http://dash.example:8080"


def raw(
    server: ApiServer, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(server.url + path, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def with_callback(path: str, name: str) -> str:
    sep = "&" if "?" in path else "?"
    return f"{path}{sep}jsonp_callback={urllib.parse.quote(name, safe='')}&_=1700000000000"


def script_call(body: bytes, name: str) -> Any:
    """The JSON argument of `/**/NAME(...);`, failing unless the script is exactly that."""
    text = body.decode("ascii")
    match = re.fullmatch(rf"/\*\*/{re.escape(name)}\((.*)\);\n", text, flags=re.DOTALL)
    assert match, text
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def server() -> Iterator[ApiServer]:
    snap = world()
    srv = serve(lambda: snap, listen="127.0.0.1:0", cors_origins=(ORIGIN,))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def token_server() -> Iterator[ApiServer]:
    snap = world()
    srv = serve(lambda: snap, listen="127.0.0.1:0", token="s3cret", cors_origins=("*",))
    yield srv
    srv.stop()


@pytest.mark.parametrize(("path", "plain_status"), QUERIES.items())
def test_jsonp_wraps_exactly_the_plain_body_with_200(
    server: ApiServer, path: str, plain_status: int
) -> None:
    assert raw(server, path)[0] == plain_status
    plain = raw(server, path)[2]
    status, headers, body = raw(server, with_callback(path, "jQuery36101_17000"))
    assert status == 200
    assert headers["Content-Type"] == "application/javascript; charset=utf-8"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert script_call(body, "jQuery36101_17000") == json.loads(plain)


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/vm/query?vmid=%3Cimg%20src%3Dx%3E", "vmid"),
        ("/vm/query", "vmid"),
        ("/volume/query?volumeid=1&volumeid=2", "volumeid"),
        ("/volume/query?volumeid=%E2%80%A8", "volumeid"),
    ],
)
def test_jsonp_bad_parameters_are_explained_without_echo(
    server: ApiServer, path: str, param: str
) -> None:
    assert raw(server, path)[0] == 400  # the plain mode
    status, _, body = raw(server, with_callback(path, "cb"))
    assert status == 200
    endpoint = path.split("?", maxsplit=1)[0]
    expected = f"{endpoint} needs {param}=N, a non-negative integer, given once"
    assert script_call(body, "cb") == {"error": expected}


def test_jsonp_unknown_id_is_the_seed_error_body(server: ApiServer) -> None:
    _, _, body = raw(server, with_callback("/vm/query?vmid=999", "cb"))
    assert script_call(body, "cb") == {"error": "vmid : 999 does not exist"}
    _, _, body = raw(server, with_callback("/volume/query?volumeid=7", "ns.cb"))
    assert script_call(body, "ns.cb") == {"error": "volumeid : 7 does not exist"}


@pytest.mark.parametrize(("path", "key"), MUTATING.items())
def test_jsonp_mutating_endpoints_give_the_seed_failure_value(
    server: ApiServer, path: str, key: str
) -> None:
    status, headers, body = raw(server, with_callback(path, "$cb"))
    assert status == 200
    assert headers["Content-Type"].startswith("application/javascript")
    answer = script_call(body, "$cb")
    assert set(answer) == {key, "error"}
    assert answer[key] == 0
    assert "volctl is declarative" in answer["error"]
    assert "volctl apply -f" in answer["error"]
    # the plain mode is unchanged: 405 JSON, also for GET, also with POST + jsonp_callback
    assert raw(server, path)[0] == 405
    assert raw(server, with_callback(path, "cb"), method="POST")[0] == 405


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("path", ["/vm/query?vmid=100", "/vm/types", "/vm/create"])
def test_hostile_callback_names_get_400_without_echo(
    server: ApiServer, path: str, name: str
) -> None:
    status, headers, body = raw(server, with_callback(path, name))
    assert status == 400
    assert headers["Content-Type"] == "application/json"
    answer = json.loads(body)
    assert set(answer) == {"error"}
    assert "jsonp_callback" in answer["error"]
    if name:
        assert name not in answer["error"]


def test_callback_of_64_characters_is_fine_and_repeated_is_not(server: ApiServer) -> None:
    name = "a" * 63 + "$"
    assert raw(server, with_callback("/vm/types", name))[0] == 200
    assert raw(server, "/vm/types?jsonp_callback=a&jsonp_callback=b")[0] == 400


def test_with_a_token_jsonp_never_serves_data(token_server: ApiServer) -> None:
    for path in (*QUERIES, *MUTATING):
        status, _, body = raw(token_server, with_callback(path, "cb"))
        assert status == 200
        answer = script_call(body, "cb")
        key = MUTATING.get(path)
        assert set(answer) == ({key, "error"} if key else {"error"}), path
        assert "bearer token is required" in answer["error"]
        assert "test_vm" not in body.decode()
        assert "s3cret" not in body.decode()
    # with the header (curl, not a script tag) the data is there
    status, _, body = raw(
        token_server,
        with_callback("/vm/query?vmid=100", "cb"),
        headers={"Authorization": "Bearer s3cret"},
    )
    assert script_call(body, "cb")["name"] == "test_vm"


def test_cors_is_off_by_default() -> None:
    snap = world()
    srv = serve(lambda: snap, listen="127.0.0.1:0")
    try:
        status, headers, _ = raw(srv, "/vm/types", headers={"Origin": ORIGIN})
        assert status == 200
        assert "Access-Control-Allow-Origin" not in headers
        status, headers, _ = raw(
            srv,
            "/vm/types",
            method="OPTIONS",
            headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
        )
        assert status == 405
        assert "Access-Control-Allow-Origin" not in headers
    finally:
        srv.stop()


def test_cors_listed_origin_only(server: ApiServer) -> None:
    for path in ("/vm/query?vmid=100", "/api/v1/vms", "/metrics", "/vm/query?vmid=999"):
        _, headers, _ = raw(server, path, headers={"Origin": ORIGIN})
        assert headers["Access-Control-Allow-Origin"] == ORIGIN, path
        assert headers["Vary"] == "Origin"
    _, headers, _ = raw(server, "/vm/types", headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in headers
    assert "Access-Control-Allow-Origin" not in raw(server, "/vm/types")[1]


def test_cors_preflight(server: ApiServer, token_server: ApiServer) -> None:
    def preflight(srv: ApiServer, origin: str, method: str, hdrs: str | None) -> Any:
        asked = {"Origin": origin, "Access-Control-Request-Method": method}
        if hdrs:
            asked["Access-Control-Request-Headers"] = hdrs
        return raw(srv, "/api/v1/vms", method="OPTIONS", headers=asked)

    status, headers, body = preflight(server, ORIGIN, "GET", "authorization")
    assert (status, body) == (204, b"")
    assert headers["Access-Control-Allow-Origin"] == ORIGIN
    assert headers["Access-Control-Allow-Methods"] == "GET, HEAD"
    assert headers["Access-Control-Allow-Headers"] == "Authorization"
    assert int(headers["Access-Control-Max-Age"]) > 0
    for origin, method, hdrs in (
        ("http://evil.example", "GET", None),
        (ORIGIN, "POST", None),
        (ORIGIN, "DELETE", None),
        (ORIGIN, "GET", "x-custom"),
    ):
        status, headers, _ = preflight(server, origin, method, hdrs)
        assert status == 403, (origin, method, hdrs)
        assert "Access-Control-Allow-Origin" not in headers
    # a preflight never needs the token; the real request does
    status, headers, _ = preflight(token_server, "http://any.example", "GET", "Authorization")
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert raw(token_server, "/api/v1/vms", headers={"Origin": "http://a.example"})[0] == 401


def test_cors_config_key(tmp_path: Path) -> None:
    cfg = tmp_path / "volctl.yaml"
    cfg.write_text("cors:\n  origins: [http://127.0.0.1:9000, 'https://dash.example']\n")
    assert load_config(str(cfg)).cors_origins == ("http://127.0.0.1:9000", "https://dash.example")
    cfg.write_text("listen: 127.0.0.1:1\n")
    assert load_config(str(cfg)).cors_origins == ()
    for bad, field in (
        ("cors:\n  origins: [http://a.example/]\n", "cors.origins[0]"),
        ("cors:\n  origins: [ok.example]\n", "cors.origins[0]"),
        ("cors:\n  origins: ['*', 'null']\n", "cors.origins[1]"),
        ("cors: [http://a.example]\n", "cors:"),
        ("cors:\n  origin: [http://a.example]\n", "cors:"),
    ):
        cfg.write_text(bad)
        # the config schema names the line of what it catches (config.schema.json)
        where = re.escape(str(cfg)) + r"(:\d+)?: " + re.escape(field.rstrip(":"))
        with pytest.raises(SpecError, match=where):
            load_config(str(cfg))


def test_every_seed_endpoint_speaks_jsonp() -> None:
    assert set(jsonp.FAILURE_KEY) == set(seed.MUTATING)
    assert {"/vm/query", "/vm/types", "/image/list", "/volume/query", *seed.MUTATING} == jsonp.PATHS
