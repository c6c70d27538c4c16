from __future__ import annotations

import json
from pathlib import Path

import yaml

from harness.config.render import (
    LIVE_PARAMETERS,
    OBSERVE_PARAMETERS,
    faultproxy_config,
    patroni_config,
    render_files,
    write_rendered,
)
from harness.lab.presets import get_preset
from harness.lab.secrets import read_env_file


def test_patroni_bootstrap_carries_the_safety_settings() -> None:
    config = patroni_config(get_preset("fast"))
    dcs = config["bootstrap"]["dcs"]
    assert dcs["synchronous_mode"] is True
    assert dcs["failsafe_mode"] is True
    assert dcs["postgresql"]["use_pg_rewind"] is True
    assert dcs["postgresql"]["use_slots"] is True
    assert dcs["postgresql"]["parameters"]["wal_level"] == "logical"
    assert "data-checksums" in config["bootstrap"]["initdb"]
    assert config["etcd3"]["hosts"] == ["etcd1:2379", "etcd2:2379", "etcd3:2379"]


def test_statement_statistics_and_slow_plans_are_on_and_reach_running_clusters() -> None:
    parameters = patroni_config(get_preset("fast"))["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert parameters["shared_preload_libraries"] == "pg_stat_statements,auto_explain"
    assert parameters["auto_explain.log_min_duration"] == "100ms"
    assert OBSERVE_PARAMETERS.items() <= parameters.items()
    assert OBSERVE_PARAMETERS.items() <= LIVE_PARAMETERS.items()  # `up` patches older labs


def test_pg_hba_admits_only_the_stack_network_by_scram_over_tls() -> None:
    hba = patroni_config(get_preset("fast"))["postgresql"]["pg_hba"]
    admitted = [rule for rule in hba if not rule.endswith("reject")]
    assert admitted[0] == "local all all peer"
    assert admitted[1:] == [
        "hostssl replication replicator samenet scram-sha-256",
        "hostssl all all samenet scram-sha-256",
    ]
    # plaintext TCP refused for every database, replication included, on IPv4 and IPv6
    assert {r for r in hba if r.endswith("reject")} == {
        f"hostnossl {db} all {net} reject"
        for db in ("all", "replication")
        for net in ("0.0.0.0/0", "::/0")
    }


def test_one_preset_drives_patroni_and_haproxy() -> None:
    for name in ("fast", "safe"):
        p = get_preset(name)
        files = render_files(p)
        dcs = yaml.safe_load(files["patroni.yml"])["bootstrap"]["dcs"]
        assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"]) == (
            p.ttl,
            p.loop_wait,
            p.retry_timeout,
        )
        checks = f"inter {p.check_inter_ms}ms fall {p.check_fall} rise {p.check_rise}"
        assert files["haproxy.cfg"].count(checks) == 2  # rw and ro listeners
        assert f"timeout connect {p.connect_timeout_ms}ms" in files["haproxy.cfg"]


def test_haproxy_routes_rw_to_primary_and_ro_to_replicas() -> None:
    cfg = render_files(get_preset("fast"))["haproxy.cfg"]
    rw, ro = cfg.split("listen rw")[1].split("listen ro")
    assert "uri /primary" in rw and "bind *:5000" in rw
    assert "uri /replica" in ro and "bind *:5001" in ro and "balance roundrobin" in ro
    for node in ("pg1", "pg2", "pg3"):
        assert f"server {node} {node}:5432" in rw and f"server {node} {node}:5432" in ro
    assert "on-marked-down shutdown-sessions" in cfg


def test_every_node_is_reached_by_peers_through_its_replication_proxy() -> None:
    proxies = {p["name"]: p for p in faultproxy_config()}
    for i, node in enumerate(("pg1", "pg2", "pg3"), start=1):
        assert proxies[f"repl-{node}"]["upstream"] == f"{node}:5432"
        assert proxies[f"repl-{node}"]["listen"] == f"0.0.0.0:2543{i}"
    assert proxies["client-rw"]["upstream"] == "haproxy:5000"
    assert proxies["import-rw"] == {
        "name": "import-rw",
        "listen": "0.0.0.0:25090",  # the csv-import service's PGPORT in the compose file
        "upstream": "haproxy:5000",
    }
    assert json.loads(render_files(get_preset("fast"))["faultproxy.json"]) == list(proxies.values())


def test_rendered_files_hold_no_secret(tmp_path: Path) -> None:
    for content in render_files(get_preset("fast")).values():
        assert "password" not in content.lower().replace("password_encryption", "")


def test_hash_changes_only_for_files_the_preset_touches(tmp_path: Path) -> None:
    fast = read_env_file(write_rendered(get_preset("fast"), tmp_path / "a", {"X": "1"}))
    safe = read_env_file(write_rendered(get_preset("safe"), tmp_path / "b", {}))
    assert fast["X"] == "1"
    assert fast["GARDENLAB_HAPROXY_CONFIG_HASH"] != safe["GARDENLAB_HAPROXY_CONFIG_HASH"]
    assert fast["GARDENLAB_PGBOUNCER_CONFIG_HASH"] == safe["GARDENLAB_PGBOUNCER_CONFIG_HASH"]
    assert safe["GARDENLAB_PRESET"] == "safe"
    assert (tmp_path / "a" / "haproxy.cfg").exists()
