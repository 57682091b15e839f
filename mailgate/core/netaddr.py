"""IP address specs as operators write them: a single address, a range `a.b.c.d-a.b.c.e`, or a CIDR block.

Used by relay permission (who may relay outbound) and by inbound gateways (the primary's addresses).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Iterator

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_EXPANDED_HOSTS = 256


@dataclass(frozen=True)
class AddressRange:
    """An inclusive range of addresses of one family."""

    first: IPAddress
    last: IPAddress

    def __contains__(self, ip: IPAddress) -> bool:
        return ip.version == self.first.version and int(self.first) <= int(ip) <= int(self.last)

    def hosts(self) -> Iterator[IPAddress]:
        """Every address in the range (at most MAX_EXPANDED_HOSTS)."""
        if int(self.last) - int(self.first) + 1 > MAX_EXPANDED_HOSTS:
            raise ValueError(f"{self.first}-{self.last} has more than {MAX_EXPANDED_HOSTS} addresses")
        for n in range(int(self.first), int(self.last) + 1):
            yield ipaddress.ip_address(n) if self.first.version == 4 else ipaddress.IPv6Address(n)


def parse_address_spec(spec: str) -> AddressRange:
    """`10.0.0.1`, `10.0.0.1-10.0.0.9` or `10.0.0.0/29` (IPv4 or IPv6) → AddressRange; ValueError if malformed."""
    text = spec.strip()
    try:
        if "/" in text:
            net = ipaddress.ip_network(text, strict=False)
            return AddressRange(net.network_address, net.broadcast_address)
        if "-" in text:
            a, b = (ipaddress.ip_address(p.strip()) for p in text.split("-", 1))
            if a.version != b.version or int(a) > int(b):
                raise ValueError
            return AddressRange(a, b)
        ip = ipaddress.ip_address(text)
        return AddressRange(ip, ip)
    except ValueError:
        raise ValueError(f"{spec!r} is not an IP address, range (a-b) or CIDR block") from None


@dataclass(frozen=True)
class AddressSet:
    """A set of address ranges; `ip in s` for membership (IPv4-mapped IPv6 counts as IPv4)."""

    ranges: tuple[AddressRange, ...]

    @classmethod
    def parse(cls, specs: list[str]) -> "AddressSet":
        return cls(tuple(parse_address_spec(s) for s in specs))

    def __contains__(self, address: str | IPAddress) -> bool:
        try:
            ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in r for r in self.ranges)
