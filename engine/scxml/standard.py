"""The standard registry: what any SCXML document may use with this interpreter, built on request.

Nothing registers itself when a module is imported; ``standard_registry()`` builds a fresh registry
with the ecmascript datamodel, the SCXML Event I/O Processor, the Basic HTTP Event I/O Processor and
the SCXML invoker (the python and null datamodels come with every ``Registry``). An engine builds its own from it and
adds what it serves (the platform processor, Basic HTTP on its own port).
"""

from __future__ import annotations

from .basichttp import BASIC_HTTP, BasicHttpProcessor
from .ecmascript import EcmaScriptDataModel
from .executable import SCXML_PROCESSOR
from .invokers import SCXML_INVOKE_TYPE, ScxmlInvoker
from .ioprocessors import ScxmlProcessor
from .registry import Registry


def standard_registry() -> Registry:
    """A new registry of the W3C standard processors and invoke type, independent of any other."""
    registry = Registry()
    registry.register_datamodel("ecmascript", EcmaScriptDataModel)
    registry.register_processor(SCXML_PROCESSOR, ScxmlProcessor, "scxml")
    registry.register_processor(BASIC_HTTP, BasicHttpProcessor, "basichttp")
    registry.register_invoker(SCXML_INVOKE_TYPE, ScxmlInvoker, "scxml", "http://www.w3.org/TR/scxml")
    return registry


DEFAULT_REGISTRY = standard_registry()
"""What ``compile_document`` and ``SessionHost`` use when given no registry. Extend a ``copy()``
(or a ``standard_registry()``) of it, never this one: every default host shares it."""
