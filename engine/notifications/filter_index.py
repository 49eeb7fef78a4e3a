"""Subscription filters indexed by what a matching tag must contain, so a publish never tries them all.

A filter is a shell-style pattern matched with ``fnmatch.fnmatchcase`` semantics (``*``, ``?``,
``[set]``; case-sensitive; no escape character). A filter without ``*``, ``?`` or ``[`` matches only
the tag equal to it, so those live in a dict keyed by the tag. Every other filter must start with
its literal prefix (the text before its first ``*?[``) and end with its literal suffix (the text
after its last ``*?[]``), so patterns are bucketed by prefix, then by suffix: a tag looks up only
the prefix and suffix lengths that occur, at most one per character of the tag, and runs the
compiled pattern only on filters whose literal ends it already has. The cost of a lookup depends
on the tag and on the filters that could match it, never on how many others exist.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
WILDCARDS = frozenset("*?[")
#: Characters after which a literal suffix may start (``]`` may close a set).
SUFFIX_BOUNDS = frozenset("*?[]")


def is_pattern(text: str) -> bool:
    """True when ``text`` can match anything but itself."""
    return not WILDCARDS.isdisjoint(text)


def literal_ends(pattern: str) -> tuple[str, str]:
    """The prefix and suffix every tag matching ``pattern`` has (possibly empty)."""
    first = min(i for i, ch in enumerate(pattern) if ch in WILDCARDS)
    last = max(i for i, ch in enumerate(pattern) if ch in SUFFIX_BOUNDS)
    return pattern[:first], pattern[last + 1:]


@dataclass
class _Pattern(Generic[T]):
    """One distinct pattern: compiled once, with the entries that use it."""

    match: Callable[[str], re.Match[str] | None]
    entries: dict[str, T] = field(default_factory=dict)


@dataclass
class _PrefixBucket(Generic[T]):
    """The patterns sharing one literal prefix, by literal suffix."""

    by_suffix: dict[str, dict[str, _Pattern[T]]] = field(default_factory=dict)
    suffix_lengths: Counter[int] = field(default_factory=Counter)


@dataclass
class FilterIndex(Generic[T]):
    """Entries (``key`` -> value) under filters; ``matching(tag)`` yields the groups whose filter matches."""

    exact: dict[str, dict[str, T]] = field(default_factory=dict)
    _by_prefix: dict[str, _PrefixBucket[T]] = field(default_factory=dict)
    _prefix_lengths: Counter[int] = field(default_factory=Counter)

    def add(self, filter_text: str, key: str, value: T) -> None:
        if not is_pattern(filter_text):
            self.exact.setdefault(filter_text, {})[key] = value
            return
        prefix, suffix = literal_ends(filter_text)
        bucket = self._by_prefix.get(prefix)
        if bucket is None:
            bucket = self._by_prefix[prefix] = _PrefixBucket()
            self._prefix_lengths[len(prefix)] += 1
        patterns = bucket.by_suffix.get(suffix)
        if patterns is None:
            patterns = bucket.by_suffix[suffix] = {}
            bucket.suffix_lengths[len(suffix)] += 1
        compiled = patterns.get(filter_text)
        if compiled is None:
            # What fnmatch.fnmatchcase compiles, kept here rather than in its bounded cache.
            compiled = patterns[filter_text] = _Pattern(re.compile(fnmatch.translate(filter_text)).match)
        compiled.entries[key] = value

    def remove(self, filter_text: str, key: str) -> None:
        """Forget ``key`` under ``filter_text``; empty groups and buckets go too."""
        if not is_pattern(filter_text):
            group = self.exact.get(filter_text)
            if group is not None:
                group.pop(key, None)
                if not group:
                    del self.exact[filter_text]
            return
        prefix, suffix = literal_ends(filter_text)
        bucket = self._by_prefix.get(prefix)
        patterns = bucket.by_suffix.get(suffix) if bucket else None
        compiled = patterns.get(filter_text) if patterns else None
        if bucket is None or patterns is None or compiled is None:
            return
        compiled.entries.pop(key, None)
        if compiled.entries:
            return
        del patterns[filter_text]
        if patterns:
            return
        del bucket.by_suffix[suffix]
        _drop_length(bucket.suffix_lengths, len(suffix))
        if not bucket.by_suffix:
            del self._by_prefix[prefix]
            _drop_length(self._prefix_lengths, len(prefix))

    def has_patterns(self) -> bool:
        """Whether any filter is a pattern (else ``exact`` holds every filter)."""
        return bool(self._prefix_lengths)

    def groups(self, tag: str) -> list[dict[str, T]]:
        """``matching(tag)`` as a list; with no pattern filter (a subscribe_notify engine has only
        exact ones) one dict lookup, without the generator."""
        if self.has_patterns():
            return list(self.matching(tag))
        group = self.exact.get(tag)
        return [group] if group else []

    def matching(self, tag: str) -> Iterator[dict[str, T]]:
        """The entry groups whose filter matches ``tag`` (each distinct filter once)."""
        group = self.exact.get(tag)
        if group:
            yield group
        size = len(tag)
        for prefix_length in self._prefix_lengths:
            if prefix_length > size:
                continue
            bucket = self._by_prefix.get(tag[:prefix_length])
            if bucket is None:
                continue
            room = size - prefix_length
            for suffix_length in bucket.suffix_lengths:
                if suffix_length > room:
                    continue
                patterns = bucket.by_suffix.get(tag[size - suffix_length:] if suffix_length else "")
                if patterns is None:
                    continue
                for compiled in patterns.values():
                    if compiled.match(tag) is not None:
                        yield compiled.entries


def _drop_length(lengths: Counter[int], length: int) -> None:
    lengths[length] -= 1
    if lengths[length] <= 0:
        del lengths[length]
