"""SCXML events, event-descriptor matching and the attribute-friendly dict used for data."""

from __future__ import annotations

from typing import Any


class AttrDict(dict):
    """A dict whose keys also read as attributes: ``_event.data.aParam`` in the python datamodel."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None


class Event:
    """An event as the datamodel sees it through ``_event`` (W3C 5.10.1)."""

    __slots__ = ("_raw", "data", "invokeid", "name", "origin", "origintype", "sendid", "type")

    def __init__(
        self,
        name: str,
        data: Any = None,
        type: str = "external",
        sendid: str | None = None,
        origin: str | None = None,
        origintype: str | None = None,
        invokeid: str | None = None,
        raw: str | None = None,
    ):
        self.name = name
        self.data = data
        self.type = type
        self.sendid = sendid
        self.origin = origin
        self.origintype = origintype
        self.invokeid = invokeid
        self._raw = raw

    @property
    def raw(self) -> str:
        """The event as it travelled; built on demand for events that never left the engine."""
        if self._raw is None:
            self._raw = f"{self.name} {self.data!r}" if self.data is not None else self.name
        return self._raw

    def __repr__(self) -> str:
        return f"Event(name={self.name!r}, type={self.type!r}, data={self.data!r})"

    def copy(self) -> Event:
        return Event(
            self.name, self.data, self.type, self.sendid, self.origin,
            self.origintype, self.invokeid, self._raw,
        )


def parse_descriptors(text: str) -> tuple[str, ...]:
    """Split an ``event`` attribute into descriptors, normalising ``foo.*`` to ``foo``."""
    out = []
    for token in text.split():
        if token.endswith(".*"):
            token = token[:-2]
        elif token.endswith("."):
            token = token[:-1]
        out.append(token)
    return tuple(out)


def descriptors_match(descriptors: tuple[str, ...], name: str) -> bool:
    """True when one descriptor is ``*`` or a token prefix of ``name`` (W3C 3.12.1)."""
    for d in descriptors:
        if d == "*" or d == name:
            return True
        if name.startswith(d) and name[len(d)] == ".":
            return True
    return False
