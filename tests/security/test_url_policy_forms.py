"""Issue 9 item 4, found by the review: loopback and private addresses written in the forms the C
library also reads (decimal, short, hex) or embedded in IPv6 (IPv4-compatible, NAT64, 6to4,
Teredo) are refused when the URL is given, not only at connect time."""

from __future__ import annotations

import pytest

from engine.urlpolicy import UrlPolicy, UrlRefused

HIDDEN_LOOPBACK_OR_PRIVATE = [
    "http://2130706433/", "http://0/", "http://127.1/", "http://0x7f.1/", "http://0x7f000001/",
    "http://017700000001/", "http://10.1/", "http://169.254.169.254./",
    "http://[::127.0.0.1]:1/", "http://[::ffff:0:127.0.0.1]/", "http://[64:ff9b::7f00:1]/",
    "http://[64:ff9b:1::a00:1]/", "http://[2002:7f00:1::]/", "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
]


@pytest.mark.parametrize("url", HIDDEN_LOOPBACK_OR_PRIVATE)
def test_hidden_private_addresses_are_refused(url):
    with pytest.raises(UrlRefused, match="not public"):
        UrlPolicy().check(url)


@pytest.mark.parametrize("url", ["http://8.8.8.8/", "https://[2606:4700::1111]/", "https://hooks.example.com/x"])
def test_public_addresses_still_pass(url):
    assert UrlPolicy().check(url)


def test_an_allowed_network_still_allows_its_numeric_forms():
    assert UrlPolicy(networks=["127.0.0.0/8"]).check("http://127.1:9000/")
