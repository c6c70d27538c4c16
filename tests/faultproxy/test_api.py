"""The proxy and toxic endpoints behave as Toxiproxy 2.12's: status codes, bodies, defaults,
nulls and errors, as api.go, proxy.go, proxy_collection.go and toxic_collection.go define them."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from faultproxy.address import dual_stack
from tests.faultproxy.conftest import Upstreams, connect, free_address, round_trip

POPULATE_ENTRY = 'struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }'


def create(api: httpx.Client, name: str, upstream: str, **extra: object) -> httpx.Response:
    return api.post("/proxies", json={"name": name, "upstream": upstream, **extra})


def error(response: httpx.Response) -> tuple[int, Any]:
    return response.status_code, response.json()


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
    with pytest.raises(ConnectionRefusedError):
        connect(body["listen"], timeout=1)
    assert api.post("/proxies/db", json={"enabled": True}).json()["enabled"] is True  # POST too
    connect(body["listen"], timeout=1).close()

    assert api.delete("/proxies/db").status_code == 204
    assert api.get("/proxies/db").status_code == 404


def test_enabled_null_is_enabled(api: httpx.Client, upstreams: Upstreams) -> None:
    """ProxyCreate decodes into Proxy{Enabled: true}: null leaves the default."""
    created = create(api, "db", upstreams.echo, listen="127.0.0.1:0", enabled=None)
    assert created.status_code == 201 and created.json()["enabled"] is True
    with connect(created.json()["listen"]) as sock:
        assert round_trip(sock) < 1


def test_update_leaves_what_is_null_or_absent(api: httpx.Client, upstreams: Upstreams) -> None:
    """ProxyUpdate decodes over the proxy's own listen, upstream and enabled."""
    listen = create(api, "db", upstreams.echo, listen="127.0.0.1:0").json()["listen"]
    updated = api.patch("/proxies/db", json={"enabled": None, "listen": None, "upstream": None})
    assert updated.json() | {"toxics": []} == {
        "name": "db",
        "listen": listen,
        "upstream": upstreams.echo,
        "enabled": True,
        "toxics": [],
    }
    with connect(listen) as sock:
        assert round_trip(sock) < 1


def test_listen_is_the_address_bound(api: httpx.Client, upstreams: Upstreams) -> None:
    """Proxy.listen reports listener.Addr(); net.Listen resolves a hostname IPv4 first, and
    its error names the resolved address."""
    listen = create(api, "db", upstreams.echo, listen="localhost:0").json()["listen"]
    host, port = listen.rsplit(":", 1)
    assert host == "127.0.0.1" and port != "0"
    clash = create(api, "other", upstreams.echo, listen=f"localhost:{port}")
    assert error(clash) == (
        500,
        {"error": f"listen tcp 127.0.0.1:{port}: bind: address already in use", "status": 500},
    )


def test_a_proxy_never_started_reports_listen_as_given(
    api: httpx.Client, upstreams: Upstreams
) -> None:
    given = f"localhost:{free_address().rsplit(':', 1)[1]}"
    assert create(api, "db", upstreams.echo, listen=given, enabled=False).json()["listen"] == given
    enabled = api.patch("/proxies/db", json={"enabled": True}).json()
    assert enabled["listen"] == "127.0.0.1:" + given.rsplit(":", 1)[1]


def test_no_listen_address_is_every_interface(api: httpx.Client, upstreams: Upstreams) -> None:
    """net.Listen("tcp", "") listens on every interface, through one dual-stack socket where
    the host can map IPv4 into IPv6, which Go reports as [::]."""
    listen = create(api, "db", upstreams.echo).json()["listen"]
    host, port = listen.rsplit(":", 1)
    assert host == ("[::]" if dual_stack() else "0.0.0.0")
    with connect(f"127.0.0.1:{port}") as sock:
        assert round_trip(sock) < 1


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("nonsense", "listen tcp: address nonsense: missing port in address"),
        ("127.0.0.1:99999", "listen tcp: address 99999: invalid port"),
        ("::1:80", "listen tcp: address ::1:80: too many colons in address"),
        ("127.0.0.1:nosuchservice", "listen tcp: lookup tcp/nosuchservice: unknown port"),
    ],
)
def test_a_bad_listen_address_is_gos_error(
    api: httpx.Client, upstreams: Upstreams, listen: str, message: str
) -> None:
    """net.Listen's error has no status of its own: apiError answers it as a 500."""
    response = create(api, "db", upstreams.echo, listen=listen)
    assert error(response) == (500, {"error": message, "status": 500})
    assert api.get("/proxies/db").status_code == 404


def test_update_to_the_same_address_by_hostname_keeps_connections(
    api: httpx.Client, upstreams: Upstreams
) -> None:
    """Proxy.Update restarts only if Proxy.Differs, which compares resolved addresses."""
    listen = create(api, "db", upstreams.echo, listen="127.0.0.1:0").json()["listen"]
    port = listen.rsplit(":", 1)[1]
    with connect(listen) as sock:
        round_trip(sock)
        updated = api.patch("/proxies/db", json={"listen": f"localhost:{port}"}).json()
        assert updated["listen"] == listen
        assert round_trip(sock) < 1


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


def test_noop_is_a_toxic(api: httpx.Client, upstreams: Upstreams) -> None:
    """toxics/noop.go registers "noop": no attributes, data passes as it is."""
    listen = create(api, "db", upstreams.echo, listen="127.0.0.1:0").json()["listen"]
    added = api.post("/proxies/db/toxics", json={"type": "noop"})
    assert added.json() == {
        "attributes": {},
        "name": "noop_downstream",
        "type": "noop",
        "stream": "downstream",
        "toxicity": 1,
    }
    with connect(listen) as sock:
        assert round_trip(sock, b"through noop") < 1


@pytest.mark.parametrize(
    ("stream", "status", "expected"),
    [
        ("", 400, "stream was invalid, can be either upstream or downstream"),
        (None, 200, "downstream"),
        ("UpStream", 200, "UpStream"),
    ],
)
def test_stream_is_parsed_as_toxiproxy_parses_it(
    api: httpx.Client, upstreams: Upstreams, stream: str | None, status: int, expected: str
) -> None:
    """AddToxicJson: null keeps the default; stream.ParseDirection ignores case, refuses "";
    the stream is echoed as given and names the toxic."""
    create(api, "db", upstreams.echo)
    response = api.post("/proxies/db/toxics", json={"type": "latency", "stream": stream})
    assert response.status_code == status
    if status == 200:
        assert (response.json()["stream"], response.json()["name"]) == (
            expected,
            f"latency_{expected}",
        )
    else:
        assert response.json() == {"error": expected, "status": status}


def test_toxicity_is_any_float32_and_null_is_the_default(
    api: httpx.Client, upstreams: Upstreams
) -> None:
    """ToxicWrapper.Toxicity is a float32 Toxiproxy never range-checks; null leaves it be."""
    create(api, "db", upstreams.echo)
    added = api.post("/proxies/db/toxics", json={"type": "latency", "toxicity": None}).json()
    assert added["toxicity"] == 1
    high = api.post("/proxies/db/toxics", json={"type": "noop", "toxicity": 2.5}).json()
    assert high["toxicity"] == 2.5
    low = api.patch("/proxies/db/toxics/noop_downstream", json={"toxicity": -1}).json()
    assert low["toxicity"] == -1
    kept = api.patch("/proxies/db/toxics/noop_downstream", json={"toxicity": None}).json()
    assert kept["toxicity"] == -1
    wrong = api.post("/proxies/db/toxics", json={"type": "timeout", "toxicity": "0.5"})
    assert error(wrong) == (
        400,
        {
            "error": "bad request body: json: cannot unmarshal string into Go struct field "
            "ToxicWrapper.toxicity of type float32",
            "status": 400,
        },
    )


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        (
            {"latency": 1.5},
            "json: cannot unmarshal number 1.5 into Go struct field "
            "LatencyToxic.attributes.latency of type int64",
        ),
        (
            {"jitter": "10"},
            "json: cannot unmarshal string into Go struct field "
            "LatencyToxic.attributes.jitter of type int64",
        ),
        (
            [1],
            "json: cannot unmarshal array into Go struct field .attributes of type "
            "toxics.LatencyToxic",
        ),
    ],
)
def test_attributes_are_decoded_into_gos_types(
    api: httpx.Client, upstreams: Upstreams, attributes: object, message: str
) -> None:
    create(api, "db", upstreams.echo)
    response = api.post("/proxies/db/toxics", json={"type": "latency", "attributes": attributes})
    assert error(response) == (400, {"error": f"bad request body: {message}", "status": 400})


def test_attributes_may_be_negative(api: httpx.Client, upstreams: Upstreams) -> None:
    """Toxiproxy does not range-check attributes: a negative latency is no delay."""
    listen = create(api, "db", upstreams.echo, listen="127.0.0.1:0").json()["listen"]
    added = api.post("/proxies/db/toxics", json={"type": "latency", "attributes": {"latency": -50}})
    assert added.status_code == 200 and added.json()["attributes"]["latency"] == -50
    with connect(listen) as sock:
        assert round_trip(sock) < 1


def test_update_changes_only_attributes_and_toxicity(
    api: httpx.Client, upstreams: Upstreams
) -> None:
    """UpdateToxicJson decodes attributes (merged) and toxicity; name, type, stream stay."""
    create(api, "db", upstreams.echo)
    api.post("/proxies/db/toxics", json={"type": "slicer", "attributes": {"average_size": 8}})
    updated = api.patch(
        "/proxies/db/toxics/slicer_downstream",
        json={"name": "other", "type": "latency", "stream": "upstream", "attributes": {"delay": 3}},
    ).json()
    assert (updated["name"], updated["type"], updated["stream"]) == (
        "slicer_downstream",
        "slicer",
        "downstream",
    )
    assert updated["attributes"] == {"average_size": 8, "size_variation": 0, "delay": 3}


def test_toxics_are_listed_upstream_chain_first(api: httpx.Client, upstreams: Upstreams) -> None:
    """GetToxicArray walks the chains by direction: upstream, then downstream."""
    create(api, "db", upstreams.echo)
    for name, stream in (("a", "downstream"), ("b", "upstream"), ("c", "downstream")):
        api.post("/proxies/db/toxics", json={"name": name, "type": "noop", "stream": stream})
    assert [t["name"] for t in api.get("/proxies/db/toxics").json()] == ["b", "a", "c"]
    assert [t["name"] for t in api.get("/proxies/db").json()["toxics"]] == ["b", "a", "c"]


def test_keys_match_fields_in_any_case(api: httpx.Client, upstreams: Upstreams) -> None:
    """encoding/json matches object keys to struct fields case-insensitively."""
    created = api.post(
        "/proxies", json={"Name": "db", "UPSTREAM": upstreams.echo, "Enabled": False}
    )
    assert created.status_code == 201
    assert (created.json()["name"], created.json()["enabled"]) == ("db", False)
    toxic = api.post("/proxies/db/toxics", json={"Type": "latency", "Attributes": {"Latency": 7}})
    assert toxic.json()["attributes"] == {"latency": 7, "jitter": 0}


@pytest.mark.parametrize(
    ("path", "content", "status", "message"),
    [
        ("/proxies", b"", 400, "bad request body: EOF"),
        ("/proxies", b'{"name": "db", "upstream"', 400, "bad request body: unexpected EOF"),
        (
            "/proxies",
            b"[]",
            400,
            "bad request body: json: cannot unmarshal array into Go value of type toxiproxy.Proxy",
        ),
        (
            "/proxies",
            b'{"name": "db", "upstream": "x:1", "enabled": "yes"}',
            400,
            "bad request body: json: cannot unmarshal string into Go struct field Proxy.enabled "
            "of type bool",
        ),
        ("/proxies/db/toxics", b"null", 400, "invalid toxic type"),
        ("/proxies/db/toxics", b"", 400, "bad request body: EOF"),
    ],
)
def test_bodies_are_read_as_gos_decoder_reads_them(
    api: httpx.Client,
    upstreams: Upstreams,
    path: str,
    content: bytes,
    status: int,
    message: str,
) -> None:
    if path != "/proxies":
        create(api, "db", upstreams.echo)
    response = api.post(path, content=content)
    assert error(response) == (status, {"error": message, "status": status})


def test_only_the_first_json_value_counts(api: httpx.Client, upstreams: Upstreams) -> None:
    """json.NewDecoder(body).Decode reads one value and ignores what follows."""
    content = f'{{"name": "db", "upstream": "{upstreams.echo}"}} and then some'.encode()
    assert api.post("/proxies", content=content).status_code == 201


def test_the_resource_is_found_before_the_body_is_read(
    api: httpx.Client, upstreams: Upstreams
) -> None:
    """ProxyUpdate and ToxicUpdate look the proxy (and toxic) up first."""
    assert api.patch("/proxies/missing", content=b"{bad").status_code == 404
    create(api, "db", upstreams.echo)
    assert api.patch("/proxies/db/toxics/missing", content=b"{bad").status_code == 404


def test_reset_enables_proxies_and_removes_toxics(api: httpx.Client, upstreams: Upstreams) -> None:
    create(api, "db", upstreams.echo, enabled=False)
    api.post("/proxies/db/toxics", json={"type": "timeout", "stream": "upstream"})
    assert api.post("/reset").status_code == 204
    proxy = api.get("/proxies/db").json()
    assert proxy["enabled"] is True and proxy["toxics"] == []


def test_populate_creates_then_leaves_unchanged_proxies_be(
    api: httpx.Client, upstreams: Upstreams
) -> None:
    """AddOrReplace keeps a proxy whose addresses do not differ (toxics and all); PopulateJson
    still lists the entry it was given, never started: enabled false, no toxics."""
    wanted = [
        {"name": "a", "listen": free_address(), "upstream": upstreams.echo},
        {"name": "b", "listen": free_address(), "upstream": upstreams.blob},
    ]
    first = api.post("/populate", json=wanted)
    assert first.status_code == 201
    assert [p["name"] for p in first.json()["proxies"]] == ["a", "b"]
    assert all(p["enabled"] for p in first.json()["proxies"])
    api.post("/proxies/a/toxics", json={"type": "noop"})
    again = api.post("/populate", json=wanted)
    assert again.status_code == 201
    assert again.json() == {"proxies": [{**p, "enabled": False, "toxics": []} for p in wanted]}
    kept = api.get("/proxies").json()
    assert [kept[p["name"]]["listen"] for p in wanted] == [p["listen"] for p in wanted]
    assert kept["a"]["enabled"] and [t["name"] for t in kept["a"]["toxics"]] == ["noop_downstream"]


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("name", "missing required field: name at proxy 2"),
        ("upstream", "missing required field: upstream at proxy 2"),
    ],
)
def test_populate_checks_every_entry_before_creating_any(
    api: httpx.Client, upstreams: Upstreams, missing: str, message: str
) -> None:
    """PopulateJson checks names and upstreams first and names the entry, from 1; its errors
    are JSON (application/json) with the proxies it went through, here none: null."""
    good = {"name": "a", "listen": "127.0.0.1:0", "upstream": upstreams.echo}
    bad = {"name": "b", "upstream": upstreams.echo}
    del bad[missing]
    response = api.post("/populate", json=[good, bad])
    assert response.headers["content-type"] == "application/json"
    assert error(response) == (400, {"error": message, "status": 400, "proxies": None})
    assert api.get("/proxies").json() == {}


def test_populate_stops_at_an_entry_that_fails_to_listen(
    api: httpx.Client, upstreams: Upstreams
) -> None:
    """An entry that passes the checks but fails to start stops PopulateJson there: those
    before it stay, and the error lists them (api_test.go's bad-data case)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = f"127.0.0.1:{holder.getsockname()[1]}"
        response = api.post(
            "/populate",
            json=[
                {"name": "a", "listen": "127.0.0.1:0", "upstream": upstreams.echo},
                {"name": "b", "listen": taken, "upstream": upstreams.echo},
                {"name": "c", "listen": "127.0.0.1:0", "upstream": upstreams.echo},
            ],
        )
    body = response.json()
    assert response.status_code == 500
    assert body["error"] == f"listen tcp {taken}: bind: address already in use"
    assert [p["name"] for p in body["proxies"]] == ["a"]
    assert set(api.get("/proxies").json()) == {"a"}


@pytest.mark.parametrize(
    ("content", "status", "body"),
    [
        (b"[]", 201, {"proxies": None}),
        (b"null", 201, {"proxies": None}),
        (
            b'{"proxies": []}',
            400,
            {
                "error": "bad request body: json: cannot unmarshal object into Go value of type "
                f"[]{POPULATE_ENTRY}",
                "status": 400,
                "proxies": None,
            },
        ),
    ],
)
def test_populate_takes_a_list(
    api: httpx.Client, content: bytes, status: int, body: dict[str, Any]
) -> None:
    response = api.post("/populate", content=content)
    assert (response.status_code, response.json()) == (status, body)


@pytest.mark.parametrize(
    ("request_args", "status", "error_message"),
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
        (("POST", "/proxies", {"name": "x"}), 400, "missing required field: upstream"),
        (("POST", "/proxies", {"name": "db", "upstream": "x:1"}), 409, "proxy already exists"),
    ],
)
def test_errors_carry_toxiproxy_status_and_body(
    api: httpx.Client,
    upstreams: Upstreams,
    request_args: tuple[Any, ...],
    status: int,
    error_message: str,
) -> None:
    """apiError sends `{"error", "status"}` through http.Error: text/plain, a newline after."""
    create(api, "db", upstreams.echo)
    method, path, *body = request_args
    response = api.request(method, path, json=body[0] if body else None)
    assert error(response) == (status, {"error": error_message, "status": status})
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content.endswith(b"}\n")


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


def test_a_config_file_that_fails_is_reported_and_the_api_served(tmp_path: Path) -> None:
    """ApiServer.PopulateConfig logs a config it cannot apply; the server starts regardless."""
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([{"name": "a", "upstream": "127.0.0.1:1"}, {"name": "b"}]))
    host, port = free_address().rsplit(":", 1)
    command = [sys.executable, "-m", "faultproxy", "--host", host, "--port", port]
    server = subprocess.Popen(
        [*command, "--config", str(config)], stdout=subprocess.PIPE, text=True
    )
    try:
        with httpx.Client(base_url=f"http://{host}:{port}", timeout=2) as client:
            deadline = time.monotonic() + 10
            while True:
                try:
                    assert client.get("/proxies").json() == {}
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "the API did not come up"
                    time.sleep(0.1)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=10)
    assert "missing required field: upstream at proxy 2" in output
