"""TCP addresses as Go's net package treats them, since Toxiproxy's answers come from it.

Toxiproxy binds `listen` with net.Listen and reports `listener.Addr()` (proxy.go, Proxy.listen),
and compares a requested listen address with the bound one through net.ResolveTCPAddr
(Proxy.Differs). So a hostname resolves IPv4 first, an empty or unspecified host listens on
every interface through one dual-stack socket (reported `[::]:port` where the host can map IPv4
into IPv6, as Go does), and every error reads as Go's.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from functools import cache


class AddressError(Exception):
    """An address Go's net package refuses; the message is Go's."""


@dataclass(frozen=True)
class TcpAddress:
    """net.TCPAddr: `host` is an IP literal, or "" for every interface."""

    host: str
    port: int

    def __str__(self) -> str:
        return join_host_port(self.host, self.port)

    @property
    def every_interface(self) -> bool:
        return not self.host or ipaddress.ip_address(self.host).is_unspecified


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(address: str) -> tuple[str, str]:
    """net.SplitHostPort, with its messages."""

    def refuse(why: str) -> AddressError:
        return AddressError(f"address {address}: {why}")

    colon = address.rfind(":")
    if colon < 0:
        raise refuse("missing port in address")
    if address.startswith("["):
        end = address.find("]")
        if end < 0:
            raise refuse("missing ']' in address")
        if end + 1 == len(address):
            raise refuse("missing port in address")
        if end + 1 != colon:
            raise refuse(
                "too many colons in address"
                if address[end + 1] == ":"
                else "missing port in address"
            )
        host, unbracketed = address[1:end], (1, end + 1)
    else:
        host, unbracketed = address[:colon], (0, 0)
        if ":" in host:
            raise refuse("too many colons in address")
    if "[" in address[unbracketed[0] :]:
        raise refuse("unexpected '[' in address")
    if "]" in address[unbracketed[1] :]:
        raise refuse("unexpected ']' in address")
    return host, address[colon + 1 :]


def lookup_port(service: str) -> int:
    """net.LookupPort for "tcp": a number (signed, as Go parses it), "" for any, or a service."""
    digits = service[1:] if service[:1] in ("+", "-") else service
    if not service:
        port = 0
    elif digits.isascii() and digits.isdigit():
        port = -int(digits) if service[0] == "-" else int(digits)
    else:
        try:
            port = socket.getservbyname(service.lower(), "tcp")
        except OSError:
            raise AddressError(f"lookup tcp/{service}: unknown port") from None
    if not 0 <= port <= 0xFFFF:
        raise AddressError(f"address {service}: invalid port")
    return port


def literal_ip(host: str) -> str | None:
    """The IP a literal names, printed as Go prints it (an IPv4-mapped IPv6 as IPv4)."""
    bare, _, zone = host.partition("%")
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return f"{ip}%{zone}" if zone else str(ip)


async def resolve(address: str) -> TcpAddress:
    """net.ResolveTCPAddr("tcp", address): a hostname becomes its first IPv4 address, if any."""
    if not address:
        return TcpAddress("", 0)
    host, service = split_host_port(address)
    port = lookup_port(service)
    if not host:
        return TcpAddress("", port)
    if (ip := literal_ip(host)) is not None:
        return TcpAddress(ip, port)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        raise AddressError(f"lookup {host}: no such host") from None
    ips = [str(info[4][0]) for info in infos]
    return TcpAddress(next((a for a in ips if ":" not in a), ips[0]), port)


@cache
def dual_stack() -> bool:
    """Go's supportsIPv4map probe: can one IPv6 socket also carry IPv4?"""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            probe.bind(("::ffff:127.0.0.1", 0))
    except OSError:
        return False
    return True


def go_errno(exc: OSError) -> str:
    """An errno as Go's syscall package words it: the C library's text, lower-cased first."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


async def listen(address: str) -> socket.socket:
    """A listening socket for `address`, bound as net.Listen("tcp", address) binds it."""
    try:
        where = await resolve(address)
    except AddressError as exc:
        raise AddressError(f"listen tcp: {exc}") from None
    if where.every_interface:
        family = socket.AF_INET6 if dual_stack() else socket.AF_INET
        host = "::" if dual_stack() else "0.0.0.0"
    else:
        family = socket.AF_INET6 if ":" in where.host else socket.AF_INET
        host = where.host
    sock = socket.socket(family, socket.SOCK_STREAM)
    step = "socket"
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        step = "bind"
        flags = socket.AI_NUMERICHOST | socket.AI_PASSIVE
        sock.bind(socket.getaddrinfo(host, where.port, family, socket.SOCK_STREAM, 0, flags)[0][4])
        step = "listen"
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise AddressError(f"listen tcp {where}: {step}: {go_errno(exc)}") from None
    return sock


def bound(sock: socket.socket) -> str:
    """A listener's address as Go's listener.Addr().String() prints it."""
    host, port = sock.getsockname()[:2]
    return join_host_port(literal_ip(host) or host, port)


async def dial(address: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """net.Dial("tcp", address) with no deadline of its own: the OS's connect timeout applies,
    as it does to Toxiproxy's upstream dial (proxy.go, Proxy.server). An empty host is this
    machine, as in Go."""
    host, service = split_host_port(address)
    return await asyncio.open_connection(host or "127.0.0.1", lookup_port(service))
