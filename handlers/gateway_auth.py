"""Who may call POST /ussd: the configured aggregator, and nobody else.

A request is admitted when it carries the shared secret (header or path segment,
compared in constant time) and, where networks are configured, comes from one of them.
Without a secret, only loopback callers are admitted: a gateway must be configured before
the endpoint is reachable from outside.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

SECRET_HEADER = "X-Gateway-Secret"  # noqa: S105 - a header name, not a secret

Network = IPv4Network | IPv6Network


class BadNetwork(ValueError):
    """A network in USSD_GATEWAY_NETWORKS is not a CIDR block."""


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated CIDR blocks, e.g. "203.0.113.0/24, 2001:db8::/32"."""
    networks = []
    for part in text.split(","):
        if part.strip():
            try:
                networks.append(ip_network(part.strip(), strict=False))
            except ValueError:
                raise BadNetwork(part.strip()) from None
    return tuple(networks)


@dataclass(frozen=True, slots=True)
class GatewayPolicy:
    secret: str | None = field(default=None, repr=False)
    networks: tuple[Network, ...] = ()

    @property
    def loopback_only(self) -> bool:
        return self.secret is None and not self.networks

    def admits(self, peer: str | None, sent_secret: str | None) -> bool:
        if not self._from_allowed_network(peer):
            return False
        if self.secret is None:
            return True
        return sent_secret is not None and hmac.compare_digest(
            sent_secret.encode(), self.secret.encode()
        )

    def _from_allowed_network(self, peer: str | None) -> bool:
        try:
            address = ip_address(peer) if peer else None
        except ValueError:
            address = None
        if address is None:
            return False
        if self.networks:
            return any(address in network for network in self.networks)
        if self.secret is None:
            return address.is_loopback
        return True

    def describe(self) -> str:
        """One line for the start-up banner."""
        if self.loopback_only:
            return "USSD gateway: loopback callers only (set USSD_GATEWAY_SECRET to open it)"
        parts = ["shared secret" if self.secret else "no secret"]
        if self.networks:
            parts.append("from " + ", ".join(str(n) for n in self.networks))
        return "USSD gateway: " + ", ".join(parts)
