"""Render the lab's tested configuration for real servers: one directory per host, the Debian
packages pinned to the versions inside the lab's images, and an Ansible playbook that
installs them and runs everything as systemd services.

Every file comes from the same functions and templates the lab renders from (harness.config.render);
only a `Site` differs: addresses, the private network, resources. Secrets never enter the
bundle: the playbook fills them from Ansible variables (`--extra-vars @secrets.yml`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.clients.docker import ContainerRuntime, DockerRuntime
from harness.config.inventory import Host, Inventory
from harness.config.monitoring import (
    MONITORING_IMAGE,
    NODE_EXPORTER,
    PGBACKREST_EXPORTER,
    PGBOUNCER_EXPORTER,
    POSTGRES_EXPORTER,
    PRODUCTION_ROUTING,
    RULES_FILE,
    Targets,
    alert_rules,
    alertmanager_config,
    prometheus_config,
)
from harness.config.render import (
    REPO_CIPHER,
    REPO_PATH,
    Site,
    etcd_scheme,
    etcd_tls_settings,
    haproxy_cfg,
    patroni_config,
    patroni_tls_environment,
    patroni_yml,
    pgbackrest_conf,
    pgbouncer_ini,
)
from harness.core.errors import CommandError, ConfigError
from harness.lab.tls import CA_CERT, CERT, KEY
from harness.lab.topology import (
    ALERTMANAGER_PORT,
    ENDPOINTS,
    ETCD_CLIENT_PORT,
    ETCD_METRICS_PORT,
    ETCD_PEER_PORT,
    HAPROXY_METRICS_PORT,
    PG_PORT,
    REST_PORT,
)

# The lab images each role's packages come from, and the packages it runs on a server.
PACKAGES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "database": (
        (
            "gardenlab/postgres:17",
            (
                "postgresql-17",
                "postgresql-17-pgvector",
                "postgresql-17-wal2json",
                "patroni",
                "python3-etcd",
                "python3-psycopg2",
                "pgbackrest",
            ),
        ),
        (
            MONITORING_IMAGE,
            (POSTGRES_EXPORTER.package, PGBACKREST_EXPORTER.package, NODE_EXPORTER.package),
        ),
    ),
    "etcd": (("gardenlab/etcd:3.5", ("etcd-server", "etcd-client")),),
    "haproxy": (
        ("gardenlab/haproxy:3.0", ("haproxy",)),
        (MONITORING_IMAGE, (NODE_EXPORTER.package,)),
    ),
    "pgbouncer": (
        ("gardenlab/pgbouncer:1.24", ("pgbouncer",)),
        (MONITORING_IMAGE, (PGBOUNCER_EXPORTER.package, NODE_EXPORTER.package)),
    ),
    "backup": (("gardenlab/postgres:17", ("pgbackrest",)),),
    "monitoring": ((MONITORING_IMAGE, ("prometheus", "prometheus-alertmanager")),),
}
SERVICES: dict[str, tuple[str, ...]] = {
    # every database server reads the repository it archives to (as postgres, the unit's
    # user, which can read the repository's secrets); the backup-age rule takes the minimum
    "database": (
        "gardenlab-patroni",
        POSTGRES_EXPORTER.package,
        PGBACKREST_EXPORTER.package,
        NODE_EXPORTER.package,
    ),
    "etcd": ("etcd",),
    "haproxy": ("haproxy", NODE_EXPORTER.package),
    "pgbouncer": ("pgbouncer", PGBOUNCER_EXPORTER.package, NODE_EXPORTER.package),
    "backup": ("gardenlab-pgbackrest",),
    "monitoring": ("prometheus", "prometheus-alertmanager"),
}
# The roles whose hosts run a node exporter: the database and load-balancing hosts.
NODE_EXPORTER_ROLES = ("database", "haproxy", "pgbouncer")
TLS_DIR = "/etc/pgbackrest/tls"  # the repository host's certificates, provisioned by the operator
# The inventory's certificates: every host gets the CA; the roles that serve TLS also get a
# certificate and key, readable by the user each runs as through one group (PostgreSQL
# accepts a key owned by root at 0640, as in the lab).
TLS_GROUP = "gardenlab-tls"
TLS_SERVERS: dict[str, str] = {"database": "postgres", "pgbouncer": "postgres", "etcd": "etcd"}

PATRONI_UNIT = """\
[Unit]
Description=Patroni for gardenlab (PostgreSQL 17 high availability)
After=network-online.target etcd.service
Wants=network-online.target

[Service]
Type=simple
User=postgres
Group=postgres
EnvironmentFile=/etc/patroni/patroni.env
ExecStart=/usr/bin/patroni /etc/patroni/patroni.yml
ExecReload=/bin/kill -HUP $MAINPID
KillMode=process
TimeoutSec=30
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""
PGBACKREST_UNIT = """\
[Unit]
Description=pgBackRest repository server for gardenlab
After=network-online.target

[Service]
Type=simple
User=postgres
ExecStart=/usr/bin/pgbackrest server
Restart=on-failure

[Install]
WantedBy=multi-user.target
"""
# Secrets, as Jinja templates Ansible fills at deploy time: never rendered here.
PATRONI_ENV = """\
PATRONI_SUPERUSER_USERNAME=postgres
PATRONI_SUPERUSER_PASSWORD={{ postgres_password }}
PATRONI_REPLICATION_USERNAME=replicator
PATRONI_REPLICATION_PASSWORD={{ replication_password }}
PATRONI_RESTAPI_USERNAME=patroni
PATRONI_RESTAPI_PASSWORD={{ patroni_restapi_password }}
"""
PGBOUNCER_USERLIST = """\
"postgres" "{{ postgres_password }}"
"crm_app" "{{ crm_app_password }}"
"""
# The repository's passphrase, on the host that holds the repository (pgBackRest reads
# conf.d/ after pgbackrest.conf), so every pgBackRest command there can read it, not only
# those started by Patroni.
CIPHER_PASS_FILE = "etc/pgbackrest/conf.d/cipher.conf"
CIPHER_PASS_TEMPLATE = "[global]\nrepo1-cipher-pass={{ pgbackrest_cipher_pass }}\n"
# The S3 repository's credentials, beside it on each database node (the lab passes the same
# two through the environment: harness.config.render.S3_KEY_ENV).
S3_KEYS_FILE = "etc/pgbackrest/conf.d/s3.conf"
S3_KEYS_TEMPLATE = (
    "[global]\nrepo1-s3-key={{ pgbackrest_s3_key }}\n"
    "repo1-s3-key-secret={{ pgbackrest_s3_key_secret }}\n"
)


def tls_environment(inventory: Inventory) -> str:
    """The lab's Patroni TLS environment with the inventory's CA path."""
    settings = patroni_tls_environment(inventory.tls)
    return "".join(f"{key}={value}\n" for key, value in settings.items())


NO_DEFAULT_CLUSTER = "# gardenlab: Patroni creates the cluster\ncreate_main_cluster = false\n"


def repository_of(inventory: Inventory) -> tuple[tuple[str, str], ...]:
    """The S3 bucket the inventory names, else its backup host over TLS, else a local path."""
    if inventory.s3:
        return inventory.s3.options()
    backup = inventory.with_role("backup")
    if backup:
        return (
            ("repo1-host", backup[0].address),
            ("repo1-host-type", "tls"),
            ("repo1-host-ca-file", f"{TLS_DIR}/ca.crt"),
            ("repo1-host-cert-file", f"{TLS_DIR}/client.crt"),
            ("repo1-host-key-file", f"{TLS_DIR}/client.key"),
        )
    return (("repo1-path", REPO_PATH), *REPO_CIPHER)


def site_of(inventory: Inventory) -> Site:
    return Site(
        etcd_hosts=tuple(f"{h.address}:{ETCD_CLIENT_PORT}" for h in inventory.with_role("etcd")),
        network=inventory.network,
        servers=tuple((h.name, h.address) for h in inventory.with_role("database")),
        docker_dns=False,
        pgbouncer_upstream=inventory.with_role("haproxy")[0].address,
        repository=repository_of(inventory),
        resources=tuple(inventory.resources.items()),
        size=inventory.size,
        tls=inventory.tls,
    )


def node_patroni_config(inventory: Inventory, host: Host) -> dict[str, Any]:
    """The lab's patroni.yml plus what the lab's containers get from their environment."""
    config = patroni_config(inventory.preset, site=site_of(inventory))
    config = {"name": host.name, **config}
    config["restapi"] = {**config["restapi"], "connect_address": f"{host.address}:{REST_PORT}"}
    config["postgresql"] = {**config["postgresql"], "connect_address": f"{host.address}:{PG_PORT}"}
    return config


def etcd_environment(inventory: Inventory, host: Host) -> str:
    """/etc/default/etcd, read by Debian's etcd unit: the lab's settings with real addresses,
    TLS with the inventory's certificates when it names them."""
    scheme = etcd_scheme(inventory.tls)
    members = ",".join(
        f"{h.name}={scheme}://{h.address}:{ETCD_PEER_PORT}" for h in inventory.with_role("etcd")
    )
    client = f"{scheme}://{host.address}:{ETCD_CLIENT_PORT}"
    peer = f"{scheme}://{host.address}:{ETCD_PEER_PORT}"
    settings = {
        "ETCD_NAME": host.name,
        "ETCD_DATA_DIR": "/var/lib/etcd/gardenlab",
        "ETCD_INITIAL_CLUSTER": members,
        "ETCD_INITIAL_CLUSTER_STATE": "new",
        "ETCD_INITIAL_CLUSTER_TOKEN": "gardenlab",
        "ETCD_LISTEN_PEER_URLS": peer,
        "ETCD_LISTEN_CLIENT_URLS": f"{client},{scheme}://127.0.0.1:{ETCD_CLIENT_PORT}",
        "ETCD_ADVERTISE_CLIENT_URLS": client,
        "ETCD_INITIAL_ADVERTISE_PEER_URLS": peer,
        "ETCD_LISTEN_METRICS_URLS": f"http://{host.address}:{ETCD_METRICS_PORT}",
        "ETCD_ENABLE_V2": "false",
        **etcd_tls_settings(inventory.tls),
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def backup_server_conf(host: Host) -> str:
    """The repository host's: the repository, encrypted here (the database nodes only reach
    it over TLS), and its TLS server."""
    cipher = "".join(f"{key}={value}\n" for key, value in REPO_CIPHER)
    return (
        f"[global]\nrepo1-path={REPO_PATH}\nrepo1-retention-full=2\n{cipher}"
        f"tls-server-address={host.address}\ntls-server-ca-file={TLS_DIR}/ca.crt\n"
        f"tls-server-cert-file={TLS_DIR}/server.crt\ntls-server-key-file={TLS_DIR}/server.key\n"
        "tls-server-auth=*=gardenlab\n"
    )


def targets_of(inventory: Inventory) -> Targets:
    """What the monitoring host scrapes: the services' own /metrics and the exporters the
    bundle runs beside them, the jobs the lab's Prometheus has."""

    def at(role: str, port: int) -> tuple[str, ...]:
        return tuple(f"{h.address}:{port}" for h in inventory.with_role(role))

    node_hosts = [h for h in inventory.hosts if set(h.roles) & set(NODE_EXPORTER_ROLES)]
    return Targets(
        jobs=(
            ("patroni", at("database", REST_PORT)),
            ("postgres", at("database", POSTGRES_EXPORTER.port)),
            ("etcd", at("etcd", ETCD_METRICS_PORT)),
            ("haproxy", at("haproxy", HAPROXY_METRICS_PORT)),
            ("pgbouncer", at("pgbouncer", PGBOUNCER_EXPORTER.port)),
            ("pgbackrest", at("database", PGBACKREST_EXPORTER.port)),
            ("node", tuple(f"{h.address}:{NODE_EXPORTER.port}" for h in node_hosts)),
        ),
        alertmanagers=tuple(
            f"127.0.0.1:{ALERTMANAGER_PORT}" for _ in inventory.with_role("monitoring")
        ),
        https_ca=inventory.tls.ca_file if inventory.tls else None,
    )


def client_tls(inventory: Inventory) -> str:
    """An exporter's connection parameters: verify-full against the servers' CA, as the lab's."""
    if inventory.tls is None:
        return "sslmode=disable"
    return f"sslmode=verify-full&sslrootcert={inventory.tls.ca_file}"


def exporter_templates(inventory: Inventory, host: Host, role: str) -> Templates:
    """The exporters' /etc/default files of a role's host; their connection strings hold the
    password, so they are templates Ansible fills."""
    if role == "database":
        dsn = f"postgresql://postgres:{{{{ postgres_password }}}}@{host.address}:{PG_PORT}"
        return {
            f"etc/default/{POSTGRES_EXPORTER.package}": POSTGRES_EXPORTER.defaults(
                {"DATA_SOURCE_NAME": f"{dsn}/postgres?{client_tls(inventory)}"}
            )
        }
    if role == "pgbouncer":
        port = ENDPOINTS["pooler"].port
        dsn = f"postgres://postgres:{{{{ postgres_password }}}}@{host.address}:{port}"
        return {
            f"etc/default/{PGBOUNCER_EXPORTER.package}": PGBOUNCER_EXPORTER.defaults(
                {"PGBOUNCER_EXPORTER_CONNECTION_STRING": f"{dsn}/pgbouncer?{client_tls(inventory)}"}
            )
        }
    return {}


Files = dict[str, str]  # path on the server -> content
Templates = dict[str, str]  # path on the server -> Jinja template Ansible fills with secrets


@dataclass
class HostBundle:
    host: Host
    packages: list[str] = field(default_factory=list)  # name=version
    files: Files = field(default_factory=dict)
    templates: Templates = field(default_factory=dict)
    services: list[str] = field(default_factory=list)
    tls: list[dict[str, str]] = field(default_factory=list)  # copied from the operator's dir
    tls_readers: list[str] = field(default_factory=list)  # users that join TLS_GROUP


def certificate_names(inventory: Inventory, host: Host) -> list[str]:
    """The names a server's certificate must carry for clients that verify them: its own, and
    on a database server also the load balancer's (HAProxy passes PostgreSQL's TLS through, and
    a client checks the name it dialled against the certificate of whichever node answers)."""
    names = [host.name, host.address]
    if "database" in host.roles:
        for balancer in inventory.with_role("haproxy"):
            names += [balancer.name, balancer.address]
        endpoints = inventory.endpoints
        names += [endpoint.rsplit(":", 1)[0] for endpoint in (endpoints.rw, endpoints.ro)]
    return list(dict.fromkeys(names))


def tls_placement(inventory: Inventory, host: Host) -> tuple[list[dict[str, str]], list[str]]:
    """What the playbook copies from the inventory's tls source_dir (ca.crt, <host>/tls.crt,
    <host>/tls.key) to where the servers' configuration expects it, and who reads the key."""
    if inventory.tls is None or inventory.tls_source is None:
        return [], []
    source, paths = inventory.tls_source, inventory.tls

    def placed(src: Path, dest: str, mode: str, group: str = "root") -> dict[str, str]:
        return {"src": str(src), "dest": dest, "mode": mode, "group": group}

    files = [placed(source / CA_CERT, paths.ca_file, "0644")]
    readers = sorted({TLS_SERVERS[r] for r in host.roles if r in TLS_SERVERS})
    if readers:
        files += [
            placed(source / host.name / CERT, paths.cert_file, "0644"),
            placed(source / host.name / KEY, paths.key_file, "0640", TLS_GROUP),
        ]
    return files, readers


ROLE_FILES: dict[str, Callable[[Inventory, Host], tuple[Files, Templates]]] = {
    "database": lambda inv, host: (
        {
            "etc/patroni/patroni.yml": patroni_yml(node_patroni_config(inv, host), inv.preset),
            "etc/pgbackrest/pgbackrest.conf": pgbackrest_conf(site_of(inv)),
            "etc/postgresql-common/createcluster.conf": NO_DEFAULT_CLUSTER,
            "etc/systemd/system/gardenlab-patroni.service": PATRONI_UNIT,
            f"etc/default/{PGBACKREST_EXPORTER.package}": PGBACKREST_EXPORTER.defaults(),
        },
        {
            "etc/patroni/patroni.env": PATRONI_ENV + tls_environment(inv),
            **({} if inv.with_role("backup") else {CIPHER_PASS_FILE: CIPHER_PASS_TEMPLATE}),
            **({S3_KEYS_FILE: S3_KEYS_TEMPLATE} if inv.s3 else {}),
        },
    ),
    "etcd": lambda inv, host: ({"etc/default/etcd": etcd_environment(inv, host)}, {}),
    "haproxy": lambda inv, host: (
        {"etc/haproxy/haproxy.cfg": haproxy_cfg(inv.preset, site_of(inv))},
        {},
    ),
    "pgbouncer": lambda inv, host: (
        {"etc/pgbouncer/pgbouncer.ini": pgbouncer_ini(site_of(inv))},
        {"var/lib/pgbouncer/userlist.txt": PGBOUNCER_USERLIST},
    ),  # where pgbouncer.ini says
    "monitoring": lambda inv, host: (
        {
            "etc/prometheus/prometheus.yml": prometheus_config(targets_of(inv)),
            f"etc/prometheus/{RULES_FILE}": alert_rules(),
            "etc/prometheus/alertmanager.yml": alertmanager_config(PRODUCTION_ROUTING),
        },
        {},
    ),
    "backup": lambda inv, host: (
        {
            "etc/pgbackrest/pgbackrest.conf": backup_server_conf(host),
            "etc/systemd/system/gardenlab-pgbackrest.service": PGBACKREST_UNIT,
        },
        {CIPHER_PASS_FILE: CIPHER_PASS_TEMPLATE},
    ),
}


def lab_package_versions(
    roles: set[str], runtime: ContainerRuntime | None = None
) -> dict[str, str]:
    """package -> version, read from the lab's own images (what the tests ran on)."""
    runtime = runtime or DockerRuntime()
    images: dict[str, set[str]] = {}
    for role in roles:
        for image, names in PACKAGES[role]:
            images.setdefault(image, set()).update(names)
    versions: dict[str, str] = {}
    for image, wanted in sorted(images.items()):
        try:
            query = ["-W", "-f", "${Package}=${Version}\\n", *sorted(wanted)]
            output = runtime.run_once(image, query, entrypoint="dpkg-query")
        except CommandError as exc:
            raise ConfigError(
                f"cannot read package versions from the lab image {image}: {exc.message}",
                "build the lab's images first: `make dev-up`",
            ) from exc
        for line in output.splitlines():
            name, _, version = line.partition("=")
            if not version:
                raise ConfigError(
                    f"{name} is not installed in the lab image {image}",
                    "the lab and the bundle must name the same packages",
                )
            versions[name] = version
    return versions


def plan_bundle(inventory: Inventory, versions: Mapping[str, str]) -> list[HostBundle]:
    bundles = []
    for host in inventory.hosts:
        bundle = HostBundle(host)
        bundle.tls, bundle.tls_readers = tls_placement(inventory, host)
        for role in host.roles:
            packages = [p for _, names in PACKAGES[role] for p in names]
            bundle.packages += [
                f"{p}={versions[p]}"
                for p in packages
                if f"{p}={versions[p]}" not in bundle.packages
            ]
            files, templates = ROLE_FILES[role](inventory, host)
            bundle.files.update(files)
            bundle.templates.update({**templates, **exporter_templates(inventory, host, role)})
            if role in NODE_EXPORTER_ROLES:
                bundle.files[f"etc/default/{NODE_EXPORTER.package}"] = NODE_EXPORTER.defaults()
            bundle.services += [s for s in SERVICES[role] if s not in bundle.services]
        bundles.append(bundle)
    return bundles


PLAYBOOK: list[dict[str, Any]] = [
    {
        "name": "gardenlab: the configuration the lab proved, on Debian 13 servers",
        "hosts": "all",
        "become": True,
        "any_errors_fatal": True,  # one server refused or failed: the others stop too
        "tasks": [
            {
                "name": "Find the operator's TLS certificates on this machine",
                "ansible.builtin.stat": {"path": "{{ item.src }}"},
                "delegate_to": "localhost",
                "become": False,
                "loop": "{{ gardenlab_tls }}",
                "register": "gardenlab_tls_found",
                "tags": ["preflight"],
            },
            {
                "name": "Refuse before any server is touched when one is missing",
                "ansible.builtin.assert": {
                    "that": "missing | length == 0",
                    "fail_msg": "missing on this machine: {{ missing | join(', ') }} (the "
                    "inventory's tls source_dir holds ca.crt, <host>/tls.crt and <host>/tls.key)",
                    "quiet": True,
                },
                "vars": {
                    "missing": "{{ gardenlab_tls_found.results | default([])"
                    " | rejectattr('stat.exists') | map(attribute='item.src') | list }}"
                },
                "tags": ["preflight"],
            },
            {
                "name": "Keep the PostgreSQL package from creating a cluster of its own",
                "ansible.builtin.copy": {
                    "src": "{{ inventory_hostname }}/etc/postgresql-common/",
                    "dest": "/etc/postgresql-common/",
                },
                "when": "'database' in gardenlab_roles",
            },
            {
                "name": "Install the packages, pinned to the versions the lab ran",
                "ansible.builtin.apt": {
                    "name": "{{ gardenlab_packages }}",
                    "update_cache": True,
                    "install_recommends": False,
                },
            },
            {
                "name": "Make the group that may read the TLS keys",
                "ansible.builtin.group": {"name": TLS_GROUP, "system": True},
                "when": "gardenlab_tls_readers | length > 0",
            },
            {
                "name": "Let the services' users read the TLS keys",
                "ansible.builtin.user": {"name": "{{ item }}", "groups": TLS_GROUP, "append": True},
                "loop": "{{ gardenlab_tls_readers }}",
            },
            {
                "name": "Make the TLS certificates' directories",
                "ansible.builtin.file": {
                    "path": "{{ item.dest | dirname }}",
                    "state": "directory",
                    "mode": "0755",
                },
                "loop": "{{ gardenlab_tls }}",
            },
            {
                "name": "Place the operator's TLS certificates and keys",
                "ansible.builtin.copy": {
                    "src": "{{ item.src }}",
                    "dest": "{{ item.dest }}",
                    "owner": "root",
                    "group": "{{ item.group }}",
                    "mode": "{{ item.mode }}",
                },
                "loop": "{{ gardenlab_tls }}",
            },
            {
                "name": "Make the configuration's directories",
                "ansible.builtin.file": {
                    "path": "/{{ item | dirname }}",
                    "state": "directory",
                    "mode": "0755",
                },
                "loop": "{{ gardenlab_files }}",
            },
            {
                "name": "Place the configuration",
                "ansible.builtin.copy": {
                    "src": "{{ inventory_hostname }}/{{ item }}",
                    "dest": "/{{ item }}",
                    "mode": "0644",
                },
                "loop": "{{ gardenlab_files }}",
            },
            {
                "name": "Make the secrets' directories",
                "ansible.builtin.file": {
                    "path": "/{{ item | dirname }}",
                    "state": "directory",
                    "owner": "postgres",
                },
                "loop": "{{ gardenlab_templates }}",
            },
            {
                "name": "Place the secrets, from Ansible variables",
                "ansible.builtin.template": {
                    "src": "{{ inventory_hostname }}/{{ item }}.j2",
                    "dest": "/{{ item }}",
                    "mode": "0600",
                    "owner": "postgres",
                },
                "loop": "{{ gardenlab_templates }}",
            },
            {
                "name": "Run the services under systemd",
                "ansible.builtin.systemd_service": {
                    "name": "{{ item }}",
                    "enabled": True,
                    "state": "restarted",
                    "daemon_reload": True,
                },
                "loop": "{{ gardenlab_services }}",
            },
        ],
    }
]


def ansible_inventory(bundles: list[HostBundle]) -> dict[str, Any]:
    return {
        "all": {
            "hosts": {
                b.host.name: {
                    "ansible_host": b.host.address,
                    "gardenlab_roles": list(b.host.roles),
                    "gardenlab_packages": b.packages,
                    "gardenlab_files": sorted(f for f in b.files if "postgresql-common" not in f),
                    "gardenlab_templates": sorted(b.templates),
                    "gardenlab_services": b.services,
                    "gardenlab_tls": b.tls,
                    "gardenlab_tls_readers": b.tls_readers,
                }
                for b in bundles
            }
        }
    }


def write_bundle(bundles: list[HostBundle], out: Path) -> list[Path]:
    """out/<host>/<path> per file, out/playbook.yml, out/inventory.yml, out/<host>/packages.txt."""
    if out.exists():
        shutil.rmtree(out)
    written = []
    for b in bundles:
        for rel, content in [*b.files.items(), *((f"{k}.j2", v) for k, v in b.templates.items())]:
            path = out / b.host.name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
            written.append(path)
        packages = out / b.host.name / "packages.txt"
        packages.write_text("".join(f"{p}\n" for p in b.packages))
        written.append(packages)
    for name, data in (("playbook.yml", PLAYBOOK), ("inventory.yml", ansible_inventory(bundles))):
        path = out / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        written.append(path)
    return written
