from __future__ import annotations

import pytest
from lab import netinfo


@pytest.mark.parametrize(
    ("raw", "plain"),
    [
        ("::ffff:172.20.0.3", "172.20.0.3"),
        ("172.20.0.3", "172.20.0.3"),
        ("fd5a:0:0::0003", "fd5a::3"),
        ("fe80::1%eth0", "fe80::1"),
        ("not-an-ip", "not-an-ip"),
    ],
)
def test_plain_ip(raw: str, plain: str) -> None:
    assert netinfo.plain_ip(raw) == plain


def test_endpoint_brackets_ipv6_only() -> None:
    assert netinfo.endpoint(("::ffff:10.0.0.1", 80, 0, 0)) == "10.0.0.1:80"
    assert netinfo.endpoint(("fd00::2", 443, 0, 0)) == "[fd00::2]:443"


@pytest.mark.parametrize(
    ("ip", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("::ffff:127.0.0.5", True),
        ("172.20.0.2", False),
        ("fd00::2", False),
        ("garbage", False),
    ],
)
def test_is_loopback(ip: str, loopback: bool) -> None:
    assert netinfo.is_loopback(ip) is loopback


def test_local_addresses_leave_out_loopback() -> None:
    found = netinfo.local_addresses()
    assert not any(netinfo.is_loopback(ip) for ip in found)
    assert all(netinfo.plain_ip(ip) == ip for ip in found)


def test_family_name() -> None:
    assert netinfo.family_name("::ffff:1.2.3.4") == "IPv4"
    assert netinfo.family_name("fd00::1") == "IPv6"
