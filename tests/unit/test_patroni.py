from __future__ import annotations

from typing import Any

import httpx
import pytest

from harness.clients.haproxy import parse_stats_csv
from harness.clients.patroni import Cluster, PatroniClient
from harness.core.errors import PatroniUnavailable


def test_recorded_cluster_parses(cluster_json: dict[str, Any]) -> None:
    cluster = Cluster.from_json(cluster_json)
    assert cluster.scope == "gardenlab"
    assert cluster.leader is not None and cluster.leader.name == "pg3"
    assert cluster.leader.lag is None
    assert [m.name for m in cluster.streaming_replicas] == ["pg1", "pg2"]
    assert [m.name for m in cluster.sync_standbys] == ["pg1"]
    assert {m.timeline for m in cluster.members} == {1}
    assert "pg3=leader/running" in cluster.describe()


def test_two_running_leaders_are_not_a_leader(cluster_json: dict[str, Any]) -> None:
    cluster_json["members"][0].update(role="leader", state="running")
    assert Cluster.from_json(cluster_json).leader is None


def test_unknown_lag_is_none(cluster_json: dict[str, Any]) -> None:
    cluster_json["members"][1]["lag"] = "unknown"
    assert Cluster.from_json(cluster_json).members[1].lag is None


def test_client_falls_back_to_the_next_node(cluster_json: dict[str, Any]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.port == 8008:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, json=cluster_json)

    urls = ["http://127.0.0.1:8008", "http://127.0.0.1:8009"]
    with PatroniClient(urls, transport=httpx.MockTransport(handler)) as client:
        assert client.cluster().leader is not None


def test_client_names_every_endpoint_when_none_answers() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    with (
        PatroniClient(["http://a:1", "http://b:2"], transport=httpx.MockTransport(handler)) as c,
        pytest.raises(PatroniUnavailable, match=r"http://a:1: HTTP 503; http://b:2: HTTP 503"),
    ):
        c.cluster()


def test_patch_config_sends_credentials() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ttl": 20})

    with PatroniClient(
        ["http://a:1"], auth=("patroni", "s"), transport=httpx.MockTransport(handler)
    ) as c:
        assert c.patch_config({"ttl": 20}) == {"ttl": 20}
    assert seen[0].method == "PATCH" and seen[0].headers["authorization"].startswith("Basic ")


def test_haproxy_stats_list_node_states(stats_csv: str) -> None:
    backends = {(b.listener, b.server): b for b in parse_stats_csv(stats_csv)}
    assert set(backends) == {(lst, n) for lst in ("rw", "ro") for n in ("pg1", "pg2", "pg3")}
    assert [n for (lst, n), b in backends.items() if lst == "rw" and b.up] == ["pg3"]
    assert sorted(n for (lst, n), b in backends.items() if lst == "ro" and b.up) == ["pg1", "pg2"]
