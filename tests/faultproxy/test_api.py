"""The HTTP API behaves as Toxiproxy's: routes, status codes, bodies, errors."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from tests.faultproxy.conftest import Upstreams, free_address


def create(api: httpx.Client, name: str, upstream: str, **extra: object) -> httpx.Response:
    return api.post("/proxies", json={"name": name, "upstream": upstream, **extra})


def test_version_is_json(api: httpx.Client) -> None:
    response = api.get("/version")
    assert response.status_code == 200 and "version" in response.json()


def test_proxy_lifecycle(api: httpx.Client, upstreams: Upstreams) -> None:
    created = create(api, "db", upstreams.echo, listen="127.0.0.1:0")
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "db" and body["enabled"] is True and body["toxics"] == []
    assert not body["listen"].endswith(":0")  # the bound port is reported
    assert set(api.get("/proxies").json()) == {"db"}
    assert api.get("/proxies/db").json()["upstream"] == upstreams.echo

    disabled = api.patch("/proxies/db", json={"enabled": False})
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    host, port = body["listen"].rsplit(":", 1)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=1)
    assert api.post("/proxies/db", json={"enabled": True}).json()["enabled"] is True  # POST too
    socket.create_connection((host, int(port)), timeout=1).close()

    assert api.delete("/proxies/db").status_code == 204
    assert api.get("/proxies/db").status_code == 404


def test_toxic_lifecycle_and_defaults(api: httpx.Client, upstreams: Upstreams) -> None:
    create(api, "db", upstreams.echo)
    added = api.post("/proxies/db/toxics", json={"type": "latency", "attributes": {"latency": 5}})
    assert added.status_code == 200
    assert added.json() == {
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
        "attributes": {"latency": 5, "jitter": 0},
    }
    updated = api.patch(
        "/proxies/db/toxics/latency_downstream", json={"attributes": {"jitter": 2}, "toxicity": 0.5}
    )
    assert updated.json()["attributes"] == {"latency": 5, "jitter": 2}
    assert updated.json()["toxicity"] == 0.5
    assert [t["name"] for t in api.get("/proxies/db/toxics").json()] == ["latency_downstream"]
    assert api.get("/proxies/db").json()["toxics"][0]["type"] == "latency"
    assert api.delete("/proxies/db/toxics/latency_downstream").status_code == 204
    assert api.get("/proxies/db/toxics").json() == []


def test_reset_enables_proxies_and_removes_toxics(api: httpx.Client, upstreams: Upstreams) -> None:
    create(api, "db", upstreams.echo, enabled=False)
    api.post("/proxies/db/toxics", json={"type": "timeout", "stream": "upstream"})
    assert api.post("/reset").status_code == 204
    proxy = api.get("/proxies/db").json()
    assert proxy["enabled"] is True and proxy["toxics"] == []


def test_populate_creates_and_is_idempotent(api: httpx.Client, upstreams: Upstreams) -> None:
    wanted = [
        {"name": "a", "listen": free_address(), "upstream": upstreams.echo},
        {"name": "b", "listen": free_address(), "upstream": upstreams.blob},
    ]
    first = api.post("/populate", json=wanted)
    assert first.status_code == 201
    assert [p["name"] for p in first.json()["proxies"]] == ["a", "b"]
    again = api.post("/populate", json=wanted)
    assert again.status_code == 201 and again.json() == first.json()


@pytest.mark.parametrize(
    ("request_args", "status", "error"),
    [
        (("GET", "/proxies/missing"), 404, "proxy not found"),
        (("GET", "/proxies/missing/toxics"), 404, "proxy not found"),
        (("POST", "/proxies/db/toxics", {"type": "gremlin"}), 400, "invalid toxic type"),
        (
            ("POST", "/proxies/db/toxics", {"type": "latency", "stream": "sideways"}),
            400,
            "stream was invalid, can be either upstream or downstream",
        ),
        (("GET", "/proxies/db/toxics/missing"), 404, "toxic not found"),
        (("POST", "/proxies", {"upstream": "x:1"}), 400, "missing required field: name"),
        (("POST", "/proxies", {"name": "db", "upstream": "x:1"}), 409, "proxy already exists"),
    ],
)
def test_errors_carry_toxiproxy_status_and_body(
    api: httpx.Client, upstreams: Upstreams, request_args: tuple[Any, ...], status: int, error: str
) -> None:
    create(api, "db", upstreams.echo)
    method, path, *body = request_args
    response = api.request(method, path, json=body[0] if body else None)
    assert (response.status_code, response.json()) == (status, {"error": error, "status": status})


def test_duplicate_toxic_name_is_a_conflict(api: httpx.Client, upstreams: Upstreams) -> None:
    create(api, "db", upstreams.echo)
    api.post("/proxies/db/toxics", json={"type": "latency", "name": "slow"})
    again = api.post("/proxies/db/toxics", json={"type": "bandwidth", "name": "slow"})
    assert again.status_code == 409 and again.json()["error"] == "toxic already exists"


def test_listen_address_in_use_is_reported(api: httpx.Client, upstreams: Upstreams) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = f"127.0.0.1:{holder.getsockname()[1]}"
        response = create(api, "db", upstreams.echo, listen=taken)
    assert response.status_code == 500
    assert response.json()["error"] == f"listen tcp {taken}: bind: address already in use"
    assert api.get("/proxies/db").status_code == 404  # nothing half-made


def test_bad_json_is_a_bad_request(api: httpx.Client) -> None:
    response = api.post("/proxies", content=b"{not json")
    assert response.status_code == 400 and response.json()["error"].startswith("bad request body")
