from __future__ import annotations

import ipaddress

import pytest
from egress.guard import EgressRefused, Target, check_url, classify, numeric_ipv4, resolve
from egress.policy import Category, EgressPolicy, EgressSettings, PolicyError

STRICT = EgressPolicy(allow_http=True)
LOOPBACK = EgressPolicy.parse("loopback", allow_http=True)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1/hook", "loopback"),
        ("http://127.8.9.10:8080/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://localhost/", "loopback"),
        ("http://api.localhost/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://172.16.0.1/", "private"),
        ("http://192.168.1.1/", "private"),
        ("http://100.64.0.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fd00::1]/", "unique-local"),
        ("http://[fc00::1]/", "unique-local"),
        ("http://[::ffff:127.0.0.1]/", "IPv4-mapped"),
        ("http://[::ffff:8.8.8.8]/", "IPv4-mapped"),
        ("http://[64:ff9b::a00:1]/", "embedding an IPv4"),
        ("http://224.0.0.1/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://255.255.255.255/", "reserved"),
        ("http://192.0.2.1/", "reserved"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://2130706433/", "127.0.0.1"),
        ("http://0177.0.0.1/", "127.0.0.1"),
        ("http://0x7f.0.0.1/", "127.0.0.1"),
        ("http://0x7f000001/", "127.0.0.1"),
        ("http://127.1/", "127.0.0.1"),
        ("http://017700000001/", "127.0.0.1"),
        ("http://3232235777/", "192.168.1.1"),
        ("http://0xA9FEA9FE/", "169.254.169.254"),
        ("http://134744072/", "dotted-decimal"),
        ("http://1.2.3.256/", "not a valid IPv4"),
        ("ftp://example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("http:///nohost", "host"),
    ],
)
def test_internal_and_ambiguous_targets_are_refused_with_a_reason(url: str, why: str) -> None:
    with pytest.raises(EgressRefused, match=why):
        check_url(url, STRICT)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hooks",
        "https://8.8.8.8/",
        "https://[2606:4700::1111]/x",
        "http://1.1.1.1",
    ],
)
def test_public_targets_pass(url: str) -> None:
    target = check_url(url, STRICT)
    assert target.scheme in ("http", "https")


def test_plain_http_needs_configuration() -> None:
    with pytest.raises(EgressRefused, match="https"):
        check_url("http://example.com/", EgressPolicy())
    assert check_url("https://example.com/", EgressPolicy()).port == 443


def test_allowlisted_categories_and_networks_pass() -> None:
    assert check_url("http://127.0.0.1:9000/", LOOPBACK).address == ipaddress.ip_address(
        "127.0.0.1"
    )
    assert check_url("http://localhost:9000/", LOOPBACK).address is None
    assert check_url("http://2130706433/", LOOPBACK).address == ipaddress.ip_address("127.0.0.1")
    with pytest.raises(EgressRefused):
        check_url("http://10.0.0.1/", LOOPBACK)
    with pytest.raises(EgressRefused, match="IPv4-mapped"):
        check_url("http://[::ffff:127.0.0.1]/", LOOPBACK)
    cidr = EgressPolicy.parse("10.1.0.0/16", allow_http=True)
    assert check_url("http://10.1.2.3/", cidr).address is not None
    with pytest.raises(EgressRefused):
        check_url("http://10.2.0.1/", cidr)


def test_numeric_forms_decode_like_resolvers() -> None:
    assert numeric_ipv4("2130706433") == (ipaddress.IPv4Address("127.0.0.1"), False)
    assert numeric_ipv4("0177.0.0.1") == (ipaddress.IPv4Address("127.0.0.1"), False)
    assert numeric_ipv4("0x7f.1") == (ipaddress.IPv4Address("127.0.0.1"), False)
    assert numeric_ipv4("8.8.8.8") == (ipaddress.IPv4Address("8.8.8.8"), True)
    assert numeric_ipv4("example.com") is None
    assert numeric_ipv4("1.2.3.example") is None


def test_classify_public_is_none() -> None:
    assert classify(ipaddress.ip_address("93.184.216.34")) is None
    assert classify(ipaddress.ip_address("169.254.169.254")) is Category.LINK_LOCAL


async def test_resolution_checks_every_address() -> None:
    target = Target(url="", scheme="http", host="localhost", port=80, address=None)
    with pytest.raises(EgressRefused, match="localhost resolves to"):
        await resolve(target, EgressPolicy.parse("private", allow_http=True))
    assert await resolve(target, LOOPBACK)


def test_policy_parsing() -> None:
    policy = EgressPolicy.parse(" loopback , private,192.0.2.0/24 ")
    assert policy.allow_categories == {Category.LOOPBACK, Category.PRIVATE}
    assert not policy.blanket
    assert EgressPolicy.parse("0.0.0.0/0").blanket
    with pytest.raises(PolicyError, match="neither a category"):
        EgressPolicy.parse("everything")


def test_production_refuses_a_blanket_allowlist() -> None:
    with pytest.raises(ValueError, match="allows every address"):
        EgressSettings(environment="production", egress_allow="::/0")
    with pytest.raises(ValueError, match="allows every address"):
        EgressSettings(environment="production", egress_allow="loopback,0.0.0.0/0")
    assert EgressSettings(environment="development", egress_allow="0.0.0.0/0").egress_policy()
    assert EgressSettings(environment="production", egress_allow="loopback").egress_policy()


STACK_PORTS = (39092, 37017, 37432, 38333)
"""Kafka, MongoDB (FerretDB), PostgreSQL and S3 of the development stack."""


def test_an_entry_with_ports_admits_only_those_ports() -> None:
    policy = EgressPolicy.parse("loopback:28700-28799, 10.0.0.0/8:443", allow_http=True)
    assert check_url("http://127.0.0.1:28700/hook", policy).port == 28700
    assert check_url("http://127.0.0.1:28799/hook", policy).port == 28799
    assert check_url("https://10.1.2.3/", policy).port == 443
    for port in STACK_PORTS:
        with pytest.raises(EgressRefused, match=f"only on ports 28700-28799, not on port {port}"):
            check_url(f"http://127.0.0.1:{port}/", policy)
    with pytest.raises(EgressRefused, match="not on port 80"):
        check_url("http://localhost/", policy)
    with pytest.raises(EgressRefused, match="not on port 8443"):
        check_url("https://10.1.2.3:8443/", policy)
    # Public hosts stay reachable on every port.
    assert check_url("https://93.184.216.34:39092/", policy).port == 39092


def test_port_entries_parse_and_refuse_nonsense() -> None:
    policy = EgressPolicy.parse("loopback:8080, loopback:9000-9001, ::1/128:7000, fe80::1")
    assert [str(r) for r in policy.rules] == [
        "loopback:8080-8080",
        "loopback:9000-9001",
        "::1/128:7000-7000",
        "fe80::1/128",
    ]
    assert policy.allow_categories == {Category.LOOPBACK}
    with pytest.raises(PolicyError, match="invalid port range"):
        EgressPolicy.parse("loopback:9000-8000")
    with pytest.raises(PolicyError, match="invalid port range"):
        EgressPolicy.parse("loopback:0")
    with pytest.raises(PolicyError, match="neither a category"):
        EgressPolicy.parse("loopback:http")


async def test_resolved_names_are_checked_on_their_port() -> None:
    policy = EgressPolicy.parse("loopback:28700-28799", allow_http=True)
    refused = Target(url="", scheme="http", host="localhost", port=39092, address=None)
    with pytest.raises(EgressRefused, match="not on port 39092"):
        await resolve(refused, policy)
    allowed = Target(url="", scheme="http", host="localhost", port=28750, address=None)
    assert await resolve(allowed, policy)
