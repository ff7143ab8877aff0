"""Who is on the other end: the direct peer, or what trusted proxies say it is."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedProxies:
    """X-Forwarded-For counts only when the peer that sent it is one of ours.

    Anyone can send the header; honouring it from an untrusted peer would let
    a client write any IP into the audit log. Proxies append, so the chain is
    read from the right: the first address that is not a trusted proxy is the
    client.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        self._networks: list[Network] = [ipaddress.ip_network(e, strict=False) for e in entries]

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._networks)

    def trusts(self, address: str) -> bool:
        """Whether ``address`` is one of our proxies (whose X-Forwarded-* we believe)."""
        return self._trusted(address)

    def client_ip(self, peer: str | None, forwarded_for: Sequence[str]) -> str | None:
        if peer is None or not self._networks or not self._trusted(peer):
            return peer
        chain = [hop.strip() for header in forwarded_for for hop in header.split(",")]
        client = peer
        for hop in reversed([h for h in chain if h]):
            try:
                ipaddress.ip_address(hop)
            except ValueError:
                # A malformed hop ends what we can believe; keep the last sound one.
                break
            client = hop
            if not self._trusted(hop):
                break
        return client
