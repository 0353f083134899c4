"""The egress policy's rules: which addresses a webhook may reach, in every spelling a URL host
can hide one in; the allow-list; and what is kept of a receiver's reply."""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from domain.egress import (
    LOOPBACK,
    host_address,
    parse_networks,
    why_host_refused,
    why_refused,
)
from domain.replies import summary


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("127.255.0.9", "127.255.0.9 is a loopback address"),
        ("::1", "::1 is a loopback address"),
        ("169.254.169.254", "169.254.169.254 is a link-local address"),
        ("fe80::1", "fe80::1 is a link-local address"),
        ("10.0.0.5", "10.0.0.5 is a private address"),
        ("172.16.3.4", "172.16.3.4 is a private address"),
        ("192.168.1.1", "192.168.1.1 is a private address"),
        ("100.64.0.1", "100.64.0.1 is a private (CGNAT) address"),
        ("fd12:3456::1", "fd12:3456::1 is a unique-local address"),
        ("fc00::1", "fc00::1 is a unique-local address"),
        ("224.0.0.251", "224.0.0.251 is a multicast address"),
        ("ff02::1", "ff02::1 is a multicast address"),
        ("0.0.0.0", "0.0.0.0 is an unspecified address"),  # noqa: S104
        ("::", ":: is an unspecified address"),
        ("240.0.0.1", "240.0.0.1 is a reserved address"),
        ("255.255.255.255", "255.255.255.255 is a reserved address"),
        ("192.0.2.1", "192.0.2.1 is a reserved (documentation) address"),
        ("::7f00:1", "::7f00:1 is a reserved address"),
        ("::ffff:127.0.0.1", "::ffff:7f00:1 is a loopback address (127.0.0.1 inside IPv6)"),
        ("::ffff:10.0.0.5", "::ffff:a00:5 is a private address (10.0.0.5 inside IPv6)"),
        ("::ffff:169.254.169.254", "::ffff:a9fe:a9fe is a link-local address (169.254.169.254 in"
                                   "side IPv6)"),
        ("64:ff9b::7f00:1", "64:ff9b::7f00:1 is a loopback address (127.0.0.1 inside IPv6)"),
        ("2002:a00:5::1", "2002:a00:5::1 is a private address (10.0.0.5 inside IPv6)"),
    ],
)  # fmt: skip
def test_internal_addresses_are_refused_with_the_reason(address: str, reason: str) -> None:
    assert why_refused(ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert why_refused(ip_address(address)) is None


def test_the_allow_list_lets_named_networks_through_and_nothing_else() -> None:
    allowed = parse_networks("127.0.0.0/8, ::1/128, 10.1.2.0/24")
    assert why_refused(ip_address("127.0.0.1"), allowed) is None
    assert why_refused(ip_address("::1"), allowed) is None
    assert why_refused(ip_address("10.1.2.200"), allowed) is None
    assert why_refused(ip_address("::ffff:10.1.2.200"), allowed) is None  # the same address
    assert why_refused(ip_address("10.1.3.1"), allowed) == "10.1.3.1 is a private address"
    assert why_refused(ip_address("169.254.169.254"), allowed) is not None


def test_the_allow_list_reads_networks_addresses_and_none() -> None:
    assert parse_networks("127.0.0.0/8,::1/128") == LOOPBACK
    assert parse_networks(" 10.1.2.3 ") == (ip_network("10.1.2.3/32"),)
    assert parse_networks("10.1.2.3/24") == (ip_network("10.1.2.0/24"),)
    assert parse_networks("none") == ()
    assert parse_networks("") == ()
    with pytest.raises(ValueError, match=r"'10\.1\.2\.0/33' is not an IP network"):
        parse_networks("127.0.0.0/8,10.1.2.0/33")
    with pytest.raises(ValueError, match="'localhost' is not an IP network"):
        parse_networks("localhost")


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("１２７.０.０.１", "127.0.0.1"),
        ("0", "0.0.0.0"),  # noqa: S104
        ("0xa9fea9fe", "169.254.169.254"),
        ("2852039166", "169.254.169.254"),
        ("012.0.0.5", "10.0.0.5"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
        ("[::FFFF:7F00:1]", "::ffff:127.0.0.1"),
    ],
)
def test_every_spelling_of_an_address_is_read_as_that_address(host: str, address: str) -> None:
    assert host_address(host) == ip_address(address)


@pytest.mark.parametrize(
    "host",
    ["example.com", "hooks.example.com.", "1.2.3.4.example", "08.0.0.1", "1..2", "4294967296"],
)
def test_names_and_numbers_no_resolver_reads_as_an_address_are_names(host: str) -> None:
    assert host_address(host) is None


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("2130706433", "127.0.0.1 is a loopback address"),
        ("0x7f000001", "127.0.0.1 is a loopback address"),
        ("0177.0.0.1", "127.0.0.1 is a loopback address"),
        ("169.254.169.254", "169.254.169.254 is a link-local address"),
        ("[::ffff:a9fe:a9fe]", "::ffff:a9fe:a9fe is a link-local address (169.254.169.254 insid"
                               "e IPv6)"),
        ("localhost", "localhost is a loopback name"),
        ("LocalHost.", "localhost is a loopback name"),
        ("api.localhost", "api.localhost is a loopback name"),
    ],
)  # fmt: skip
def test_registration_refuses_what_the_host_alone_gives_away(host: str, reason: str) -> None:
    assert why_host_refused(host) == reason


def test_registration_lets_allowed_loopback_and_names_through() -> None:
    assert why_host_refused("localhost", LOOPBACK) is None
    assert why_host_refused("2130706433", LOOPBACK) is None
    assert why_host_refused("example.com") is None
    assert why_host_refused("8.8.8.8") is None
    # Only 127.0.0.0/8 allowed: "localhost" may resolve to ::1 too, which stays refused.
    assert why_host_refused("localhost", parse_networks("127.0.0.0/8")) is not None


def test_a_reply_summary_is_one_short_printable_line_without_secrets() -> None:
    body = "HTTP 500: \x1b[31mno\x00\r\nway\u202e evil\u200b whsec_abcdef secret-token"
    assert summary(body, secrets=["whsec_abcdef", "", "token"]) == (
        "HTTP 500: [31mno way evil [redacted] secret-[redacted]"
    )
    assert summary("x" * 1000, limit=10) == "xxxxxxxxx…"
    assert len(summary("é" * 5000)) == 300
