"""A production inventory: the servers, what each runs, and the preset the lab proved.

Read from YAML and checked before anything is rendered or touched; every refusal names the
file, the line and the reason. The same model describes the lab, so lab and production
render from the same templates.

    preset: normal
    network: 10.0.1.0/24          # the private network the cluster talks on
    hosts:
      - {name: db1, address: 10.0.1.11, roles: [database, etcd]}
      - {name: db2, address: 10.0.1.12, roles: [database, etcd]}
      - {name: db3, address: 10.0.1.13, roles: [database, etcd]}
      - {name: lb1, address: 10.0.1.21, roles: [haproxy, pgbouncer]}
      - {name: bk1, address: 10.0.1.31, roles: [backup]}
      - {name: mon1, address: 10.0.1.41, roles: [monitoring]}   # optional
    resources: {cores: 8, memory: 32GB, max_connections: 400}  # per database server
    # For `harness gate`: where this machine reaches the cluster (defaults: the hosts'
    # addresses and the standard ports), and how to read the backup repository.
    endpoints: {rw: 10.0.1.21:5000, ro: 10.0.1.21:5001, pooler: 10.0.1.21:6432,
                patroni: [10.0.1.11:8008, 10.0.1.12:8008, 10.0.1.13:8008]}
    backups: {info_command: ssh bk1 pgbackrest --stanza=gardenlab info --output=json}
    # TLS (optional): where the operator keeps the certificates on this machine (source_dir,
    # relative to the inventory: ca.crt, <host>/tls.crt, <host>/tls.key; the playbook places
    # them), where each server finds them, and the CA this machine verifies the servers with.
    tls: {source_dir: tls, ca_file: /etc/gardenlab/tls/ca.crt,
          cert_file: /etc/gardenlab/tls/tls.crt, key_file: /etc/gardenlab/tls/tls.key,
          client_ca_file: ~/gardenlab-ca.crt}
    # The repository in an S3 bucket (instead of a backup host): the object storage's endpoint
    # (a host name), bucket and region; ca_file only for a private CA. The credentials are
    # Ansible variables (pgbackrest_s3_key, pgbackrest_s3_key_secret), never in the inventory.
    s3: {endpoint: fsn1.your-objectstorage.com, bucket: crm-backups, region: fsn1}
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from harness.config.render import S3Repository
from harness.config.sizing import LAB_NODE, NodeSize, parse_memory_mb
from harness.core.errors import ConfigError
from harness.lab.presets import PRESETS, TimingPreset
from harness.lab.tls import TlsPaths

ROLES = ("database", "etcd", "haproxy", "pgbouncer", "backup", "monitoring")
KEYS = ("preset", "network", "hosts", "resources", "endpoints", "backups", "tls", "s3")
TLS_KEYS = ("source_dir", "ca_file", "cert_file", "key_file", "client_ca_file")
TLS_PATH_KEYS = TLS_KEYS[1:4]  # where each server finds them: absolute paths
S3_KEYS = ("endpoint", "bucket", "region", "ca_file")
S3_REQUIRED = S3_KEYS[:3]
S3_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$")
ENDPOINT_KEYS = ("rw", "ro", "pooler", "patroni")
HOST_PORT = re.compile(r"^[A-Za-z0-9.:\[\]-]+:\d{1,5}$")
HOST_KEYS = ("name", "address", "roles")
# What each database server has: memory and parallelism settings are derived from it
# (harness.config.sizing) unless given below.
SIZE_KEYS = ("cores", "memory")
# PostgreSQL settings an inventory may size for its servers; everything else is the lab's.
RESOURCES = (
    *SIZE_KEYS,
    "shared_buffers",
    "effective_cache_size",
    "work_mem",
    "maintenance_work_mem",
    "max_connections",
    "max_wal_size",
    "wal_keep_size",
)
HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


class InventoryError(ConfigError):
    def __init__(self, path: Path, line: int, reason: str) -> None:
        super().__init__(
            f"{path}:{line}: {reason}", "fix the inventory; nothing was rendered or touched"
        )


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    roles: tuple[str, ...]
    line: int


@dataclass(frozen=True)
class Endpoints:
    """host:port addresses the gate connects to."""

    rw: str
    ro: str
    pooler: str
    patroni: tuple[str, ...]  # one per database host, in the inventory's order


@dataclass(frozen=True)
class Inventory:
    path: Path
    preset: TimingPreset
    network: str
    hosts: tuple[Host, ...]
    resources: dict[str, str]  # PostgreSQL settings given explicitly
    endpoints: Endpoints
    size: NodeSize = LAB_NODE  # each database server's, from resources' cores and memory
    backup_info_command: str | None = None  # prints `pgbackrest info --output=json`
    tls: TlsPaths | None = None  # on every server; None: the bundle renders no TLS
    tls_source: Path | None = None  # this machine's directory the playbook copies them from
    client_ca_file: str | None = None  # this machine's copy of the CA, for the gate
    s3: S3Repository | None = None  # the repository's bucket; None: a backup host or local

    def with_role(self, role: str) -> list[Host]:
        return [h for h in self.hosts if role in h.roles]

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)


def load_inventory(path: Path) -> Inventory:
    try:
        root = yaml.compose(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no inventory at {path}", "give the path of the YAML file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise InventoryError(
            path, line, f"not valid YAML: {getattr(exc, 'problem', exc)}"
        ) from None
    return Reader(path).inventory(root)


class Reader:
    """Walks the YAML nodes, so every error can point at its line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: yaml.Node | None, reason: str) -> InventoryError:
        return InventoryError(self.path, node.start_mark.line + 1 if node else 1, reason)

    def mapping(
        self, node: yaml.Node | None, what: str, allowed: tuple[str, ...]
    ) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        found: dict[str, yaml.Node] = {}
        for key, value in node.value:
            name = str(key.value)
            if name not in allowed:
                raise self.fail(
                    key, f"unknown key {name!r} in {what} (allowed: {', '.join(allowed)})"
                )
            if name in found:
                raise self.fail(key, f"{name!r} appears twice in {what}")
            found[name] = value
        return found

    def scalar(self, node: yaml.Node, what: str) -> str:
        if not isinstance(node, yaml.ScalarNode) or node.value == "":
            raise self.fail(node, f"{what} must be a plain value")
        return str(node.value)

    def inventory(self, root: yaml.Node | None) -> Inventory:
        top = self.mapping(root, "the inventory", KEYS)
        for key in ("preset", "network", "hosts"):
            if key not in top:
                raise self.fail(root, f"{key!r} is missing")
        preset_name = self.scalar(top["preset"], "preset")
        if preset_name not in PRESETS:
            raise self.fail(
                top["preset"], f"unknown preset {preset_name!r} (choose {', '.join(PRESETS)})"
            )
        network = self.network(top["network"])
        hosts = self.hosts(top["hosts"], network)
        resources, size = self.resources(top.get("resources"))
        inventory = Inventory(
            self.path,
            PRESETS[preset_name],
            str(network),
            hosts,
            resources,
            Endpoints("", "", "", ()),
            size,
        )
        self.check_roles(inventory, top["hosts"])
        backups = (
            self.mapping(top["backups"], "backups", ("info_command",)) if ("backups" in top) else {}
        )
        inventory = replace(
            inventory,
            endpoints=self.endpoints(top.get("endpoints"), inventory),
            backup_info_command=self.scalar(backups["info_command"], "info_command")
            if "info_command" in backups
            else None,
        )
        tls, tls_source, client_ca = self.tls(top.get("tls"))
        s3 = self.s3(top.get("s3"))
        if s3 is not None and inventory.with_role("backup"):
            raise self.fail(top["s3"], "s3 and a backup host: name one place for the repository")
        return replace(inventory, tls=tls, tls_source=tls_source, client_ca_file=client_ca, s3=s3)

    def s3(self, node: yaml.Node | None) -> S3Repository | None:
        """The bucket's endpoint (a host name, no scheme), bucket and region; a private CA."""
        if node is None:
            return None
        fields = self.mapping(node, "s3", S3_KEYS)
        given = {key: self.scalar(value, f"s3: {key}") for key, value in fields.items()}
        for key in S3_REQUIRED:
            if key not in given:
                raise self.fail(node, f"s3: {key!r} is missing (give {', '.join(S3_REQUIRED)})")
        if not S3_HOST.match(given["endpoint"]):
            raise self.fail(
                fields["endpoint"],
                f"s3: endpoint {given['endpoint']!r} must be a host name, "
                "e.g. fsn1.your-objectstorage.com (no scheme, no path)",
            )
        ca_file = given.get("ca_file")
        if ca_file and not ca_file.startswith("/"):
            raise self.fail(fields["ca_file"], f"s3: ca_file {ca_file!r} is not an absolute path")
        return S3Repository(given["endpoint"], given["bucket"], given["region"], ca_file)

    def tls(self, node: yaml.Node | None) -> tuple[TlsPaths | None, Path | None, str | None]:
        """The servers' certificate paths (absolute, all three), the directory on this machine
        the playbook copies them from, and this machine's copy of the CA for the gate."""
        if node is None:
            return None, None, None
        fields = self.mapping(node, "tls", TLS_KEYS)
        given = {key: self.scalar(value, key) for key, value in fields.items()}
        for key in ("source_dir", *TLS_PATH_KEYS):
            if key not in given:
                raise self.fail(node, f"tls: {key!r} is missing (give {', '.join(TLS_KEYS[:4])})")
        for key in TLS_PATH_KEYS:
            if not given[key].startswith("/"):
                raise self.fail(fields[key], f"tls: {key} {given[key]!r} is not an absolute path")
        paths = TlsPaths(given["ca_file"], given["cert_file"], given["key_file"])
        client_ca = given.get("client_ca_file")
        return (
            paths,
            self.local(given["source_dir"]),
            str(self.local(client_ca)) if client_ca else None,
        )

    def local(self, path: str) -> Path:
        """A path on this machine, as the inventory gives it: relative to the inventory's file."""
        return (self.path.parent / Path(path).expanduser()).resolve()

    def endpoints(self, node: yaml.Node | None, inventory: Inventory) -> Endpoints:
        lb, pooler = inventory.with_role("haproxy")[0], inventory.with_role("pgbouncer")[0]
        given = self.mapping(node, "endpoints", ENDPOINT_KEYS) if node is not None else {}

        def address(key: str, default: str) -> str:
            if key not in given:
                return default
            value = self.scalar(given[key], key)
            if not HOST_PORT.match(value):
                raise self.fail(given[key], f"endpoint {key}: {value!r} is not host:port")
            return value

        patroni = tuple(f"{h.address}:8008" for h in inventory.with_role("database"))
        if "patroni" in given:
            items = given["patroni"]
            if not isinstance(items, yaml.SequenceNode) or not items.value:
                raise self.fail(items, "endpoint patroni: a list of host:port, one per database")
            patroni = tuple(self.scalar(i, "a Patroni endpoint") for i in items.value)
            for item, value in zip(items.value, patroni, strict=True):
                if not HOST_PORT.match(value):
                    raise self.fail(item, f"endpoint patroni: {value!r} is not host:port")
        return Endpoints(
            address("rw", f"{lb.address}:5000"),
            address("ro", f"{lb.address}:5001"),
            address("pooler", f"{pooler.address}:6432"),
            patroni,
        )

    def network(self, node: yaml.Node) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        text = self.scalar(node, "network")
        try:
            return ipaddress.ip_network(text)
        except ValueError:
            raise self.fail(node, f"network {text!r} is not a CIDR such as 10.0.1.0/24") from None

    def hosts(
        self, node: yaml.Node, network: ipaddress.IPv4Network | ipaddress.IPv6Network
    ) -> tuple[Host, ...]:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            raise self.fail(node, "hosts must be a list of hosts")
        hosts: list[Host] = []
        for item in node.value:
            fields = self.mapping(item, "a host", HOST_KEYS)
            for key in HOST_KEYS:
                if key not in fields:
                    raise self.fail(item, f"a host without {key!r}")
            name = self.scalar(fields["name"], "a host's name")
            if not HOST_NAME.match(name):
                raise self.fail(fields["name"], f"host name {name!r}: use a-z, 0-9 and '-'")
            address = self.scalar(fields["address"], "a host's address")
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                raise self.fail(
                    fields["address"], f"{name}: {address!r} is not an IP address"
                ) from None
            if ip not in network:
                raise self.fail(fields["address"], f"{name}: {address} is outside {network}")
            for other in hosts:
                if other.name == name:
                    raise self.fail(
                        fields["name"], f"host {name} is listed twice (first at line {other.line})"
                    )
                if other.address == address:
                    raise self.fail(
                        fields["address"],
                        f"{name} and {other.name} (line {other.line}) share the address {address}",
                    )
            roles_node = fields["roles"]
            if not isinstance(roles_node, yaml.SequenceNode) or not roles_node.value:
                raise self.fail(roles_node, f"{name}: roles must be a list, e.g. [database, etcd]")
            roles = tuple(self.scalar(r, "a role") for r in roles_node.value)
            for role, role_node in zip(roles, roles_node.value, strict=True):
                if role not in ROLES:
                    raise self.fail(
                        role_node, f"{name}: unknown role {role!r} (roles: {', '.join(ROLES)})"
                    )
            hosts.append(Host(name, address, roles, item.start_mark.line + 1))
        return tuple(hosts)

    def resources(self, node: yaml.Node | None) -> tuple[dict[str, str], NodeSize]:
        """PostgreSQL settings given as they are, and the servers' size (the lab's node when
        not given; cores and memory come together)."""
        if node is None:
            return {}, LAB_NODE
        fields = self.mapping(node, "resources", RESOURCES)
        given = {key: self.scalar(value, key) for key, value in fields.items()}
        named = [key for key in SIZE_KEYS if key in given]
        if not named:
            return given, LAB_NODE
        if len(named) == 1:
            raise self.fail(node, "resources: give both cores and memory of a database server")
        try:
            cores = int(given.pop("cores"))
        except ValueError:
            raise self.fail(fields["cores"], "cores must be a whole number, e.g. 8") from None
        try:
            size = NodeSize(cores, parse_memory_mb(given.pop("memory")))
        except ConfigError as exc:
            raise self.fail(fields["memory"], f"{exc.message} ({exc.hint})") from None
        return given, size

    def check_roles(self, inventory: Inventory, node: yaml.Node) -> None:
        counts = Counter(role for h in inventory.hosts for role in h.roles)
        etcd = [h.name for h in inventory.with_role("etcd")]
        if counts["database"] < 3:
            raise self.fail(
                node,
                f"{counts['database']} database host(s): a Patroni cluster "
                "with a synchronous standby needs three",
            )
        if len(etcd) < 3:
            raise self.fail(
                node,
                f"fewer than three etcd members ({', '.join(etcd) or 'none'}): "
                "etcd survives the loss of one only with three or more",
            )
        if len(etcd) % 2 == 0:
            raise self.fail(node, f"{len(etcd)} etcd members: use an odd number")
        for role in ("haproxy", "pgbouncer"):
            if counts[role] == 0:
                raise self.fail(node, f"no host runs {role}")
        if counts["backup"] > 1:
            raise self.fail(node, "more than one backup host: name one repository host")
        if counts["monitoring"] > 1:
            raise self.fail(node, "more than one monitoring host: name one")
