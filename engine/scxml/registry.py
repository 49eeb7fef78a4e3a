"""Extension registries: datamodels, custom executable content, event I/O processors and invoke
types.

A document is checked against a registry when it is compiled (so an unknown element or type is
a load error with its line), and a session host asks the same registry for the objects that
carry events at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .datamodel import BUILTIN_DATAMODELS, DataModelKind
from .ports import EventProcessor, Invoker, factory_class, require

if TYPE_CHECKING:
    from lxml import etree

    from .compiler import Compiler
    from .executable import Action

ActionFactory = Callable[["etree._Element", "Compiler"], "Action"]
# ``factory(host)``: the host passes itself; what the product may use of it is ``ports.ProcessorHost``
# (processors) or ``ports.InvokerHost`` (invokers).
ProcessorFactory = Callable[[Any], EventProcessor]
InvokerFactory = Callable[[Any], Invoker]


class Registry:
    """What a document may use beyond the core SCXML vocabulary (the python and null
    datamodels are there from the start)."""

    def __init__(self) -> None:
        self.datamodels: dict[str, Callable[[], DataModelKind]] = dict(BUILTIN_DATAMODELS)
        self._datamodel_instances: dict[str, DataModelKind] = {}
        self.actions: dict[tuple[str, str], ActionFactory] = {}
        self.processors: dict[str, ProcessorFactory] = {}
        self.processor_aliases: dict[str, str] = {}
        self.invokers: dict[str, InvokerFactory] = {}
        self.invoker_aliases: dict[str, str] = {}

    def copy(self) -> Registry:
        other = Registry()
        other.datamodels = dict(self.datamodels)
        other.actions = dict(self.actions)
        other.processors = dict(self.processors)
        other.processor_aliases = dict(self.processor_aliases)
        other.invokers = dict(self.invokers)
        other.invoker_aliases = dict(self.invoker_aliases)
        return other

    def register_datamodel(self, name: str, factory: Callable[[], DataModelKind]) -> None:
        """A datamodel documents name with ``datamodel="name"``; ``factory()`` builds it once."""
        self.datamodels[name] = factory
        self._datamodel_instances.pop(name, None)

    def datamodel(self, name: str) -> DataModelKind | None:
        """The datamodel named ``name`` (one instance per registry), None when unknown."""
        kind = self._datamodel_instances.get(name)
        if kind is None:
            factory = self.datamodels.get(name)
            if factory is None:
                return None
            kind = self._datamodel_instances[name] = factory()
        return kind

    def register_action(self, namespace: str, name: str, factory: ActionFactory) -> None:
        """Custom executable content: ``<ns:name>`` compiles through ``factory``."""
        self.actions[(namespace, name)] = factory

    def register_processor(self, type_uri: str, factory: ProcessorFactory, *aliases: str) -> None:
        """An event I/O processor; ``factory(host)`` builds the instance a host uses. A class that
        does not implement ``ports.EventProcessor`` is refused here (``TypeError``)."""
        cls = factory_class(factory)
        if cls is not None:
            require(cls, EventProcessor, "event I/O processor")
        self.processors[type_uri] = factory
        for alias in aliases:
            self.processor_aliases[alias] = type_uri

    def register_invoker(self, type_uri: str, factory: InvokerFactory, *aliases: str) -> None:
        """An ``<invoke type>``; ``factory(host)`` builds the instance a host uses. A class that
        does not implement ``ports.Invoker`` is refused here (``TypeError``)."""
        cls = factory_class(factory)
        if cls is not None:
            require(cls, Invoker, "invoker")
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
