"""The HTTP layer behaves as Toxiproxy 2.12's (api.go on gorilla/mux and net/http): routing,
its middlewares (request id, browsers refused), response formats, kept-alive connections."""

from __future__ import annotations

import re

import httpx
import pytest

from faultproxy import VERSION
from tests.faultproxy.conftest import ProxyServer, Upstreams, exchange

XID = re.compile(r"[0-9a-v]{20}")
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"


def test_unrouted_paths_get_net_https_404(api: httpx.Client) -> None:
    """No route: http.NotFound, plain text; mux does not fold a trailing slash."""
    for path in ("/nothing", "/proxies/", "/proxies/db/toxics/t/more"):
        response = api.get(path)
        assert (response.status_code, response.text) == (404, "404 page not found\n")
        assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_a_routed_path_with_another_method_is_an_empty_405(api: httpx.Client) -> None:
    for method, path in (("PUT", "/proxies"), ("DELETE", "/reset"), ("POST", "/version")):
        response = api.request(method, path)
        assert (response.status_code, response.content) == (405, b"")
        assert "x-toxiproxy-request-id" not in response.headers


def test_paths_are_percent_decoded(api: httpx.Client, upstreams: Upstreams) -> None:
    """mux matches the decoded URL path: a proxy named "a b" is /proxies/a%20b."""
    api.post("/proxies", json={"name": "a b", "upstream": upstreams.echo})
    assert api.get("/proxies/a%20b").json()["name"] == "a b"


def test_routed_requests_carry_a_request_id(api: httpx.Client) -> None:
    """hlog.RequestIDHandler("request_id", "X-Toxiproxy-Request-Id"): an xid on every routed
    request, errors included; none without a route (mux runs middlewares on a match only)."""
    ids = [api.get(path).headers.get("x-toxiproxy-request-id") for path in ("/proxies",) * 2]
    ids.append(api.get("/proxies/missing").headers.get("x-toxiproxy-request-id"))
    assert all(i is not None and XID.fullmatch(i) for i in ids), ids
    assert len(set(ids)) == 3
    assert "x-toxiproxy-request-id" not in api.get("/nothing").headers


@pytest.mark.parametrize(("method", "path"), [("GET", "/proxies"), ("POST", "/reset")])
def test_browsers_are_refused(api: httpx.Client, method: str, path: str) -> None:
    """stopBrowsersMiddleware: a User-Agent starting "Mozilla/" gets 403, so a web page cannot
    drive the API from a browser."""
    response = api.request(method, path, headers={"User-Agent": BROWSER})
    assert (response.status_code, response.text) == (403, "User agent not allowed\n")
    assert XID.fullmatch(response.headers["x-toxiproxy-request-id"])
    assert api.get("/proxies", headers={"User-Agent": "curl/8.5.0"}).status_code == 200


def test_a_refused_browser_changes_nothing(api: httpx.Client, upstreams: Upstreams) -> None:
    body = {"name": "db", "upstream": upstreams.echo}
    assert api.post("/proxies", json=body, headers={"User-Agent": BROWSER}).status_code == 403
    assert api.get("/proxies").json() == {}


def test_version_is_written_as_toxiproxy_writes_it(api: httpx.Client) -> None:
    response = api.get("/version")
    assert response.content == f'{{"version": "{VERSION}"}}\n'.encode()
    assert response.headers["content-type"] == "application/json;charset=utf-8"


def test_json_is_written_as_gos_json_marshal_writes_it(
    api: httpx.Client, upstreams: Upstreams
) -> None:
    """Compact, no trailing newline, HTML characters escaped, float32 toxicity shortest."""
    api.post("/proxies", json={"name": "<db>", "upstream": upstreams.echo, "enabled": False})
    response = api.get("/proxies/%3Cdb%3E")
    assert response.headers["content-type"] == "application/json"
    assert response.content == (
        b'{"name":"\\u003cdb\\u003e","listen":"","upstream":"'
        + upstreams.echo.encode()
        + b'","enabled":false,"toxics":[]}'
    )
    toxic = api.post("/proxies/%3Cdb%3E/toxics", json={"type": "noop", "toxicity": 0.1})
    assert toxic.content.endswith(b'"toxicity":0.1}')


def test_the_proxy_index_is_sorted_by_name(api: httpx.Client, upstreams: Upstreams) -> None:
    """json.Marshal writes a map's keys in order."""
    for name in ("b", "c", "a"):
        api.post("/proxies", json={"name": name, "upstream": upstreams.echo, "enabled": False})
    assert list(api.get("/proxies").json()) == ["a", "b", "c"]


def test_no_content_has_no_body_and_no_type(api: httpx.Client) -> None:
    response = api.post("/reset")
    assert (response.status_code, response.content) == (204, b"")
    assert "content-type" not in response.headers


def test_connections_are_kept_alive(proxy_server: ProxyServer, api: httpx.Client) -> None:
    """net/http keeps an HTTP/1.1 connection open between requests."""
    twice = b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n" * 2
    last = b"GET /proxies HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    response = exchange(proxy_server.port, twice + last)
    assert response.count(b"HTTP/1.1 200 OK\r\n") == 3
    assert response.endswith(b"{}")


def test_chunked_bodies_and_expect_continue_are_read(
    proxy_server: ProxyServer, api: httpx.Client, upstreams: Upstreams
) -> None:
    body = f'{{"name": "db", "upstream": "{upstreams.echo}", "enabled": false}}'.encode()
    half = len(body) // 2
    chunked = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[:half], body[half:])
    )
    response = exchange(
        proxy_server.port,
        b"POST /proxies HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Expect: 100-continue\r\nConnection: close\r\n\r\n" + chunked + b"0\r\n\r\n",
    )
    assert response.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\n")
    assert api.get("/proxies/db").status_code == 200


def test_a_malformed_request_gets_a_plain_400(proxy_server: ProxyServer) -> None:
    response = exchange(proxy_server.port, b"NONSENSE\r\n\r\n")
    assert response.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert response.endswith(b"\r\n\r\n400 Bad Request")
