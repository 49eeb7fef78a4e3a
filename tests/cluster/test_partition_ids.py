"""Partitions of ids (issue 14): every id falls in one of 64 partitions, evenly, and an id can be
minted in a chosen partition without losing its format or much of its randomness."""

from __future__ import annotations

import re
import zlib
from collections import Counter

import pytest

from engine.ids import PARTITIONS, partition_of, partition_of_ordering_key, random_id, random_id_in


def test_random_ids_spread_evenly_over_the_partitions() -> None:
    counts = Counter(partition_of(random_id()) for _ in range(256 * 1024))
    assert len(counts) == PARTITIONS == 64
    expected = 256 * 1024 / PARTITIONS  # 4096; one standard deviation is about 63
    assert all(abs(n - expected) < expected / 10 for n in counts.values()), counts


def test_an_id_minted_in_a_partition_falls_in_it_and_keeps_its_format() -> None:
    for p in (0, 1, 37, 63):
        ids = [random_id_in(p) for _ in range(2000)]
        assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
        assert {partition_of(i) for i in ids} == {p}
        assert len(set(ids)) == len(ids)
        # the first four digits keep ten random bits: about 1024 values, not one
        assert len({i[:4] for i in ids}) > 500
    with pytest.raises(ValueError):
        random_id_in(64)


def test_other_keys_are_placed_by_their_crc() -> None:
    for key in ("client-chosen-id", "ab", "", "+1555", "12_4abcd"):
        assert partition_of(key) == zlib.crc32(key.encode()) % 64
    assert partition_of("ABCD0000") == partition_of("abcd0000") == 0xABCD % 64


def test_a_delivery_goes_where_its_callback_is() -> None:
    cid = random_id_in(17)
    assert partition_of_ordering_key(f"httpcb|http://x/y|callback/svc/{cid}") == 17
    assert partition_of_ordering_key(f"fcm|{cid}") == 17
    assert partition_of_ordering_key("customhttp|http://x|orders") == partition_of("orders")
