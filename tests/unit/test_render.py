from __future__ import annotations

import json
from pathlib import Path

import yaml

from harness.config.bundle import etcd_environment, node_patroni_config, targets_of
from harness.config.inventory import load_inventory
from harness.config.monitoring import LAB_TARGETS, prometheus_config
from harness.config.render import (
    LIVE_PARAMETERS,
    OBSERVE_PARAMETERS,
    etcd_tls_settings,
    faultproxy_config,
    patroni_config,
    render_files,
    write_rendered,
)
from harness.lab.presets import get_preset
from harness.lab.secrets import read_env_file
from harness.lab.tls import LAB_PATHS
from harness.lab.topology import ETCD_MEMBERS, TLS_NAMES
from tests.unit.test_inventory import GOOD


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


ROOT = Path(__file__).parents[2]
TLS_SECTION = (
    "tls: {source_dir: certs, ca_file: /srv/ca.pem, "
    "cert_file: /srv/db.pem, key_file: /srv/db.key}\n"
)


def test_patroni_reaches_etcd_over_https_with_a_client_certificate() -> None:
    etcd3 = patroni_config(get_preset("fast"))["etcd3"]
    assert etcd3["protocol"] == "https"
    assert (etcd3["cacert"], etcd3["cert"], etcd3["key"]) == (
        LAB_PATHS.ca_file,
        LAB_PATHS.cert_file,
        LAB_PATHS.key_file,
    )


def test_the_labs_etcd_runs_the_rendered_tls_settings_on_https_urls() -> None:
    """The Compose file carries etcd_tls_settings, and every member has its certificate."""
    compose = yaml.safe_load((ROOT / "compose" / "docker-compose.yml").read_text())
    environment = compose["x-etcd-env"]
    settings = etcd_tls_settings(LAB_PATHS)
    assert settings["ETCD_CLIENT_CERT_AUTH"] == settings["ETCD_PEER_CLIENT_CERT_AUTH"] == "true"
    assert settings["ETCD_TLS_MIN_VERSION"] == "TLS1.3"
    assert settings.items() <= environment.items()
    urls = [environment["ETCD_LISTEN_CLIENT_URLS"], environment["ETCD_LISTEN_PEER_URLS"]]
    for member in ETCD_MEMBERS:
        service = compose["services"][member]["environment"]
        urls += [service["ETCD_ADVERTISE_CLIENT_URLS"], service["ETCD_INITIAL_ADVERTISE_PEER_URLS"]]
        assert member in TLS_NAMES[member]
    assert all(url.startswith("https://") for url in urls)
    assert environment["ETCD_INITIAL_CLUSTER"].count("https://") == len(ETCD_MEMBERS)


def test_prometheus_scrapes_etcd_on_its_metrics_port_in_the_lab_and_on_servers() -> None:
    jobs = {job["job_name"]: job for job in yaml.safe_load(prometheus_config())["scrape_configs"]}
    assert jobs["etcd"]["static_configs"][0]["targets"] == [f"{m}:2381" for m in ETCD_MEMBERS]
    assert "scheme" not in jobs["etcd"]
    assert dict(LAB_TARGETS.jobs)["etcd"] == tuple(f"{m}:2381" for m in ETCD_MEMBERS)


def test_the_servers_etcd_gets_the_labs_tls_settings_with_the_inventorys_paths(
    tmp_path: Path,
) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(GOOD + TLS_SECTION)
    inventory = load_inventory(path)
    environment = dict(
        line.split("=", 1) for line in etcd_environment(inventory, inventory.host("db1")).split()
    )
    assert etcd_tls_settings(inventory.tls).items() <= environment.items()
    assert environment["ETCD_CERT_FILE"] == environment["ETCD_PEER_CERT_FILE"] == "/srv/db.pem"
    assert environment["ETCD_TRUSTED_CA_FILE"] == "/srv/ca.pem"
    assert environment["ETCD_TLS_MIN_VERSION"] == "TLS1.3"
    assert environment["ETCD_ADVERTISE_CLIENT_URLS"] == "https://10.0.1.11:2379"
    assert environment["ETCD_INITIAL_CLUSTER"] == ",".join(
        f"db{i}=https://10.0.1.1{i}:2380" for i in (1, 2, 3)
    )
    assert environment["ETCD_LISTEN_METRICS_URLS"] == "http://10.0.1.11:2381"
    etcd3 = node_patroni_config(inventory, inventory.host("db1"))["etcd3"]
    assert etcd3["protocol"] == "https" and etcd3["cert"] == "/srv/db.pem"
    assert etcd3["hosts"] == [f"10.0.1.1{i}:2379" for i in (1, 2, 3)]
    assert dict(targets_of(inventory).jobs)["etcd"] == tuple(f"10.0.1.1{i}:2381" for i in (1, 2, 3))


def test_the_servers_etcd_without_tls_renders_plain_http(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(GOOD)
    inventory = load_inventory(path)
    text = etcd_environment(inventory, inventory.host("db2"))
    assert "https" not in text and "ETCD_CLIENT_CERT_AUTH" not in text
    assert "protocol" not in node_patroni_config(inventory, inventory.host("db2"))["etcd3"]
