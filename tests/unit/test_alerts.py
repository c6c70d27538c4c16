"""The alert rules under Debian 13's promtool: each fires on what should trip it, stays silent
on its look-alikes; and the monitoring configuration loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
import yaml

from harness.config import promtool
from harness.config.monitoring import (
    ALERT_NAMES,
    ALERTS,
    LAB_TARGETS,
    RULES_FILE,
    Alert,
    LatencyFile,
    LatencyHistogram,
    alert_rules,
    alertmanager_config,
    backup_outcome,
    blind_rules,
    expected_targets,
    prometheus_config,
    promtool_refusal,
    rule_metrics,
    write_member_targets,
)
from harness.core import process
from harness.core.errors import CommandError, EngineError

CASES = Path(__file__).parent / "alerts" / "alerts_test.yml"


@pytest.fixture(scope="module")
def tool() -> promtool.Promtool:
    try:
        return promtool.ensure_promtool()
    except EngineError as exc:
        if "cannot fetch" in exc.message:
            pytest.skip(f"promtool unavailable: {exc.message}")
        raise


def test_every_alert_fires_and_stays_silent_as_its_cases_say(
    tool: promtool.Promtool, tmp_path: Path
) -> None:
    (tmp_path / RULES_FILE).write_text(alert_rules())
    shutil.copy(CASES, tmp_path / CASES.name)
    tool.check_rules(tmp_path / RULES_FILE)
    output = tool.test_rules(tmp_path / CASES.name)
    assert "SUCCESS" in output


def test_every_alert_has_a_firing_case_and_a_silent_one() -> None:
    tests = yaml.safe_load(CASES.read_text())["tests"]
    fires: set[str] = set()
    silent: set[str] = set()
    for case in tests:
        for check in case["alert_rule_test"]:
            (fires if check["exp_alerts"] else silent).add(check["alertname"])
    assert fires == set(ALERT_NAMES)
    # promtool compares the exact list, so a look-alike series in a firing case (another
    # instance, another backup type) is a silent case too for these three
    assert silent >= set(ALERT_NAMES) - {"BackupTooOld", "ConnectionsSaturated", "HostCpuHigh"}


def test_rules_use_patroni_4_names() -> None:
    rules = alert_rules()
    assert "patroni_master" not in rules
    assert "patroni_primary" in rules
    assert len(set(ALERT_NAMES)) == len(ALERTS)


def test_prometheus_config_loads_with_the_rules(tool: promtool.Promtool, tmp_path: Path) -> None:
    (tmp_path / RULES_FILE).write_text(alert_rules())
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus_config(rules_dir=str(tmp_path)))
    tool.check_config(config)
    jobs = {j["job_name"] for j in yaml.safe_load(config.read_text())["scrape_configs"]}
    assert jobs == {"patroni", "postgres", "etcd", "haproxy", "pgbouncer", "pgbackrest", "node"}


def test_extra_members_are_scraped_while_listed_and_expected_only_then(
    tool: promtool.Promtool, tmp_path: Path
) -> None:
    (tmp_path / RULES_FILE).write_text(alert_rules())
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus_config(rules_dir=str(tmp_path)))
    write_member_targets(tmp_path, ["pg4", "pg5"])
    tool.check_config(config)  # the discovery files too
    discovered = {
        j["job_name"]: j["file_sd_configs"][0]["files"]
        for j in yaml.safe_load(config.read_text())["scrape_configs"]
        if "file_sd_configs" in j
    }
    assert discovered == {
        "patroni": [f"{tmp_path}/targets/patroni.yml"],
        "postgres": [f"{tmp_path}/targets/postgres.yml"],
    }
    listed = yaml.safe_load((tmp_path / "targets" / "postgres.yml").read_text())
    assert listed == [{"targets": ["pg4-exporter:9187", "pg5-exporter:9187"]}]
    static = sum(len(hosts) for _, hosts in LAB_TARGETS.jobs)
    assert expected_targets(tmp_path) == static + 4
    write_member_targets(tmp_path, [])  # scaled back in
    assert expected_targets(tmp_path) == static
    tool.check_config(config)


def test_alertmanager_sends_resolved_to_the_webhook() -> None:
    config = yaml.safe_load(alertmanager_config(webhook="http://host:9999/alerts"))
    assert config["route"]["group_wait"] == "1s"
    assert config["receivers"][0]["webhook_configs"][0]["send_resolved"] is True


def test_a_changed_package_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=b"not it"))
    with pytest.raises(EngineError, match="not the pinned"):
        promtool.ensure_promtool(transport)
    assert not (promtool.cache_dir() / "promtool").exists()


def test_the_binary_comes_out_of_a_deb(tmp_path: Path) -> None:
    import io
    import lzma
    import tarfile

    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        info = tarfile.TarInfo("./usr/bin/promtool")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"#!x\n"))
    data = lzma.compress(payload.getvalue())
    deb = b"!<arch>\n" + b"data.tar.xz/".ljust(48) + str(len(data)).encode().ljust(10) + b"`\n"
    deb += data
    promtool.extract_binary(deb, tmp_path / "promtool")
    assert (tmp_path / "promtool").read_bytes() == b"#!x\n"


def test_the_metric_names_the_rules_read_are_found() -> None:
    assert rule_metrics() >= {
        "patroni_primary",
        "patroni_postgres_timeline",
        "pg_up",
        "etcd_server_has_leader",
        "haproxy_backend_active_servers",
        "pgbouncer_pools_client_waiting_connections",
    }
    assert not any(name.startswith(("by", "on", "le")) for name in rule_metrics())


def test_the_backup_outcome_is_a_metric_the_rule_reads(tool: promtool.Promtool) -> None:
    text = backup_outcome(True, "full", 1764694800.0)
    assert 'gardenlab_backup_last_status{stanza="gardenlab",type="full"} 1\n' in text
    assert "gardenlab_backup_last_status" in rule_metrics()
    tool.check_metrics(text)


def test_the_workloads_latency_histogram_is_the_series_the_latency_rule_reads(
    tool: promtool.Promtool, tmp_path: Path
) -> None:
    histogram = LatencyHistogram("chaos")
    for seconds in (0.003, 0.02, 0.4, 0.6, 30.0):
        histogram.observe(seconds)
    text = histogram.exposition()
    assert 'gardenlab_query_duration_seconds_bucket{source="chaos",le="0.005"} 1\n' in text
    assert 'gardenlab_query_duration_seconds_bucket{source="chaos",le="0.5"} 3\n' in text
    assert 'gardenlab_query_duration_seconds_bucket{source="chaos",le="+Inf"} 5\n' in text
    assert 'gardenlab_query_duration_seconds_count{source="chaos"} 5\n' in text
    assert "gardenlab_query_duration_seconds_bucket" in rule_metrics()
    tool.check_metrics(text)
    published = LatencyFile(tmp_path, "chaos")
    published.histogram.observe(0.01)
    published.publish()
    name = "gardenlab_query_latency_chaos.prom"
    assert (tmp_path / name).read_text() == published.histogram.exposition()
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no partial left behind
    published.remove()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("rules", "says"),
    [
        (
            "groups:\n- name: g\n  rules:\n  - alert: Good\n    expr: up == 0\n"
            "  - alert: Bad\n    expr: sum(up ==\n",
            'alerts.yml:7: group "g", rule 2, "Bad": could not parse expression',
        ),
        ("groups:\n- name: g\n  rules:\n  - alert: X\n    expr: [up\n", "alerts.yml:4: did not"),
    ],
)
def test_promtools_refusal_names_the_file_and_line(
    tool: promtool.Promtool, tmp_path: Path, rules: str, says: str
) -> None:
    (tmp_path / RULES_FILE).write_text(rules)
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus_config(rules_dir=str(tmp_path)))
    with pytest.raises(CommandError) as refused:
        process.run([str(tool.path), "check", "config", str(config)], timeout=60)
    named = promtool_refusal(refused.value.stderr, str(tmp_path), tmp_path)
    assert named.startswith(f"{tmp_path}/{says}"), named


def test_a_rule_reading_a_metric_no_target_exports_is_named_with_its_line() -> None:
    assert blind_rules() == []  # every metric the rules read is one a job exports
    old = Alert("LeaderGone", "max(patroni_master) < 1", "10s", "critical", "Patroni 3's name")
    [found] = blind_rules("alerts.yml", (*ALERTS, old))
    line = found.split(":")[1]
    assert (
        found == f"alerts.yml:{line}: rule LeaderGone reads patroni_master, which no target exports"
    )
    assert alert_rules((*ALERTS, old)).splitlines()[int(line) - 1].strip() == "- alert: LeaderGone"
