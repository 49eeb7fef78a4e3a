"""Extension registries: custom executable content, event I/O processors and invoke types.

A document is checked against a registry when it is compiled (so an unknown element or type is
a load error with its line), and a session host asks the same registry for the objects that
carry events at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lxml import etree

    from .compiler import Compiler
    from .executable import Action

ActionFactory = Callable[["etree._Element", "Compiler"], "Action"]


class Registry:
    """What a document may use beyond the core SCXML vocabulary."""

    def __init__(self) -> None:
        self.actions: dict[tuple[str, str], ActionFactory] = {}
        self.processors: dict[str, Callable[[Any], Any]] = {}
        self.processor_aliases: dict[str, str] = {}
        self.invokers: dict[str, Callable[[Any], Any]] = {}
        self.invoker_aliases: dict[str, str] = {}

    def copy(self) -> Registry:
        other = Registry()
        other.actions = dict(self.actions)
        other.processors = dict(self.processors)
        other.processor_aliases = dict(self.processor_aliases)
        other.invokers = dict(self.invokers)
        other.invoker_aliases = dict(self.invoker_aliases)
        return other

    def register_action(self, namespace: str, name: str, factory: ActionFactory) -> None:
        """Custom executable content: ``<ns:name>`` compiles through ``factory``."""
        self.actions[(namespace, name)] = factory

    def register_processor(self, type_uri: str, factory: Callable[[Any], Any], *aliases: str) -> None:
        """An event I/O processor; ``factory(host)`` builds the instance a host uses."""
        self.processors[type_uri] = factory
        for alias in aliases:
            self.processor_aliases[alias] = type_uri

    def register_invoker(self, type_uri: str, factory: Callable[[Any], Any], *aliases: str) -> None:
        """An ``<invoke type>``; ``factory(host)`` builds the instance a host uses."""
        self.invokers[type_uri] = factory
        for alias in aliases:
            self.invoker_aliases[alias] = type_uri

    def processor_type(self, name: str) -> str | None:
        """The canonical URI for a send type (or alias), None when unknown."""
        if name in self.processors:
            return name
        return self.processor_aliases.get(name)

    def invoker_type(self, name: str) -> str | None:
        if name in self.invokers:
            return name
        return self.invoker_aliases.get(name)


DEFAULT_REGISTRY = Registry()
