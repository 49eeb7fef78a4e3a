"""The subscription index gives exactly what trying every filter with fnmatch gives.

A hypothesis state machine adds, removes, expires and publishes against the real
``SubscriptionRegistry`` and against a plain list checked one by one (the registry's behaviour
before it was indexed): same matches in the same order, same removals, same survivors. Filters
and tags are drawn from a small alphabet heavy in wildcard and set characters (``*?[]!-``) and
``/``, so sets, ranges, unclosed brackets and overlapping literal ends all occur.
"""

from __future__ import annotations

import fnmatch

from cryptography.fernet import Fernet
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, precondition, rule

from engine.notifications.expiry_heap import ExpiryHeap
from engine.notifications.filter_index import FilterIndex, literal_ends
from engine.notifications.subscriptions import Subscription, SubscriptionRegistry, callback_tag
from engine.secretbox import SecretBox

TAG_CHARS = "ab/c-]["
#: Pieces of filters, each with what it matches (None: only itself, read literally).
PIECES: dict[str, str | None] = {
    "*": None, "?": None, "[ab]": "ab", "[!a]": "b/c-][", "[a-c]": "abc", "[]a]": "]a", "[!]]": "ab/c-[",
    "[": "[", "]": "]", "-": "-", "!": "!", "a": "a", "b/": "b/", "/c": "/c", "ab": "ab",
}
pieces = st.lists(st.sampled_from(sorted(PIECES)), min_size=1, max_size=5)
tags = st.text(TAG_CHARS, max_size=8)
BOX = SecretBox(Fernet.generate_key())
BOX = SecretBox(Fernet.generate_key())


def subscription(sub_id: str, filter_text: str, expires_at: float, callback_id: str | None) -> Subscription:
    return Subscription(id=sub_id, subscriber_id="", provider="default", type="httpcb", device_id="d",
                        properties={}, filter=filter_text, expires_at=expires_at, created_at=0.0,
                        callback_id=callback_id)


class Reference:
    """The matcher the index replaces: every subscription, in the order added, tried in turn."""

    def __init__(self) -> None:
        self.items: dict[str, Subscription] = {}
        self.removed: list[str] = []

    def add(self, sub: Subscription) -> None:
        self.items.pop(sub.id, None)
        self.items[sub.id] = sub

    def remove(self, sub_id: str) -> None:
        if self.items.pop(sub_id, None) is not None:
            self.removed.append(sub_id)

    def matching(self, tag: str, now: float) -> list[Subscription]:
        for sub_id in [s.id for s in self.items.values() if s.expires_at <= now]:
            self.remove(sub_id)
        return [s for s in self.items.values() if now < s.expires_at and fnmatch.fnmatchcase(tag, s.filter)]

    def for_callback(self, callback_id: str) -> list[Subscription]:
        return [s for s in self.items.values() if s.callback_id == callback_id]


class RegistryAgainstReference(RuleBasedStateMachine):
    ids = Bundle("ids")

    def __init__(self) -> None:
        super().__init__()
        self.registry = SubscriptionRegistry(BOX)
        self.reference = Reference()
        self.now = 0.0
        self.next_id = 0
        self.pieces: dict[str, list[str]] = {}  # filters made of pieces, and those pieces

    @rule(target=ids, parts=pieces, lifetime=st.integers(0, 40), callback=st.sampled_from([None, "1", "2"]))
    def add_made_of_pieces(self, parts: list[str], lifetime: int, callback: str | None) -> str:
        filter_text = "".join(parts)
        self.pieces[filter_text] = parts
        return self.add(filter_text, lifetime, callback)

    @rule(target=ids, filter_text=st.one_of(st.text("ab/c-]*?[!", min_size=1, max_size=8), tags.filter(bool),
                                            st.builds(callback_tag, st.sampled_from(["s", "t"]),
                                                      st.sampled_from(["1", "2"]))),
          lifetime=st.integers(0, 40), callback=st.sampled_from([None, "1", "2"]))
    def add(self, filter_text: str, lifetime: int, callback: str | None) -> str:
        sub_id = f"s{self.next_id}"
        self.next_id += 1
        self.registry.add(subscription(sub_id, filter_text, self.now + lifetime, callback))
        self.reference.add(subscription(sub_id, filter_text, self.now + lifetime, callback))
        return sub_id

    @rule(sub_id=ids, filter_text=st.text("ab*?[]", min_size=1, max_size=6), lifetime=st.integers(0, 40))
    def add_again(self, sub_id: str, filter_text: str, lifetime: int) -> None:
        """The same id added again replaces the subscription (a load after an add, say)."""
        self.registry.add(subscription(sub_id, filter_text, self.now + lifetime, None))
        self.reference.add(subscription(sub_id, filter_text, self.now + lifetime, None))

    @rule(sub_id=consumes(ids))
    def remove(self, sub_id: str) -> None:
        gone = self.registry.remove(sub_id)
        assert (gone is not None) == (sub_id in self.reference.items)
        self.reference.remove(sub_id)

    @rule(callback=st.sampled_from(["1", "2", "3"]))
    def callback_ended(self, callback: str) -> None:
        mine = [s.id for s in self.registry.for_callback(callback)]
        assert mine == [s.id for s in self.reference.for_callback(callback)]
        for sub_id in mine:
            self.registry.remove(sub_id)
            self.reference.remove(sub_id)

    @rule(step=st.sampled_from([0, 0.5, 1, 5, 20]))
    def time_passes(self, step: float) -> None:
        self.now += step

    @rule(tag=tags)
    def publish(self, tag: str) -> None:
        got = [s.id for s in self.registry.matching(tag, self.now)]
        assert got == [s.id for s in self.reference.matching(tag, self.now)], tag

    @precondition(lambda self: self.pieces)
    @rule(data=st.data())
    def publish_near_a_filter(self, data: st.DataObject) -> None:
        """A tag made from a filter's pieces, so that it often matches it (or just misses)."""
        parts = self.pieces[data.draw(st.sampled_from(sorted(self.pieces)))]
        self.publish("".join(data.draw(_stand_in(part)) for part in parts))

    @invariant()
    def same_subscriptions_and_removals(self) -> None:
        assert list(self.registry.items) == list(self.reference.items)
        assert sorted(self.registry.removed) == sorted(self.reference.removed)


def _stand_in(part: str) -> st.SearchStrategy[str]:
    """What one piece of a filter becomes in a tag: mostly text it matches, sometimes another character."""
    if part == "*":
        matching = st.text(TAG_CHARS, max_size=3)
    elif part == "?":
        matching = st.sampled_from(TAG_CHARS)
    else:
        members = PIECES[part]
        matching = st.just(part) if members == part else st.sampled_from(members or part)
    return st.one_of(matching, st.sampled_from(TAG_CHARS))


RegistryAgainstReference.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None,
                                                      suppress_health_check=[HealthCheck.too_slow])
TestRegistryAgainstReference = RegistryAgainstReference.TestCase


def test_literal_ends_bound_every_match() -> None:
    """Every tag fnmatch accepts starts with the prefix and ends with the suffix, without overlap."""
    for pattern in ["*", "a*b", "a[b]c", "*[]]x", "*[]x", "a[b", "[!a]-z*", "ab?", "?", "[a-c]b*c]d"]:
        prefix, suffix = literal_ends(pattern)
        for length in range(6):
            for chars in _words(length):
                if fnmatch.fnmatchcase(chars, pattern):
                    assert chars.startswith(prefix) and chars.endswith(suffix), (pattern, chars)
                    assert len(chars) >= len(prefix) + len(suffix), (pattern, chars)


def _words(length: int) -> list[str]:
    words = [""]
    for _ in range(length):
        words = [w + c for w in words for c in "ab]x-z"]
    return words


def test_index_holds_nothing_once_everything_is_removed() -> None:
    index: FilterIndex[int] = FilterIndex()
    for n, text in enumerate(["a*", "a*b", "a?b", "x", "*", "a[bc]"]):
        index.add(text, str(n), n)
    for n, text in enumerate(["a*", "a*b", "a?b", "x", "*", "a[bc]"]):
        index.remove(text, str(n))
    assert index == FilterIndex()


def test_expiry_heap_stays_proportional_to_what_is_live() -> None:
    """Subscriptions removed long before they expire (callbacks that ended) do not pile up."""
    heap = ExpiryHeap()
    for n in range(10_000):
        heap.push(f"k{n}", 1e9 + n)
        if n >= 10:
            heap.discard(f"k{n - 10}")
    assert len(heap) == 10
    assert len(heap._heap) <= 128
    assert heap.pop_expired(1e9 + 9_995) == [f"k{n}" for n in range(9_990, 9_996)]


def test_a_subscription_pushed_again_expires_at_its_latest_time() -> None:
    heap = ExpiryHeap()
    heap.push("a", 5.0)
    heap.push("a", 50.0)
    assert heap.due(10.0) and heap.pop_expired(10.0) == []  # only the stale slot was due: gone now
    assert not heap.due(10.0)
    assert heap.due(50.0) and heap.pop_expired(50.0) == ["a"]
    assert not heap.due(1e9)  # nothing left
    assert len(heap) == 0



def test_a_registry_of_exact_filters_matches_by_one_lookup_and_a_pattern_brings_the_index_back() -> None:
    """Without a pattern the registry answers from the exact filters alone (``has_patterns``
    false); once a pattern is added the index is searched too, and once it is gone again the
    exact lookup serves alone, with the same answers as the reference throughout."""
    registry, reference = SubscriptionRegistry(BOX), Reference()
    for sub in (subscription("a", "callback/s/1", 50.0, "1"), subscription("b", "callback/s/1", 50.0, None),
                subscription("c", "callback/s/2", 50.0, "2")):
        registry.add(sub)
        reference.add(sub)
    tags_tried = ["callback/s/1", "callback/s/2", "callback/s/3", ""]
    assert not registry._filters.has_patterns()
    for tag in tags_tried:
        assert [s.id for s in registry.matching(tag, 1.0)] == [s.id for s in reference.matching(tag, 1.0)]
    assert [s.id for s in registry.matching("callback/s/1", 1.0)] == ["a", "b"]
    pattern = subscription("p", "callback/s/*", 50.0, None)
    registry.add(pattern)
    reference.add(pattern)
    assert registry._filters.has_patterns()
    assert [s.id for s in registry.matching("callback/s/1", 1.0)] == ["a", "b", "p"]
    registry.remove("p")
    reference.remove("p")
    assert not registry._filters.has_patterns()
    for tag in tags_tried:
        assert [s.id for s in registry.matching(tag, 1.0)] == [s.id for s in reference.matching(tag, 1.0)]
    assert registry.matching("callback/s/1", 60.0) == []  # expired on the fast path too
    assert sorted(registry.removed) == ["a", "b", "c", "p"]
