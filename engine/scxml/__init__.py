"""Our SCXML interpreter: W3C SCXML 1.0 with python and null datamodels.

It knows nothing of callbacks. Compile a document once (``compile_document`` /
``load_document``), then run any number of sessions of it in a ``SessionHost``.
"""

from .basichttp import BASIC_HTTP, BasicHttpProcessor
from .compiler import compile_document, load_document
from .errors import CommunicationError, DocumentError, ExecutionError, Problem, SessionLimitError
from .events import AttrDict, Event
from .executable import SCXML_PROCESSOR, Action
from .host import Limits, SessionHost
from .invokers import SCXML_INVOKE_TYPE, Invocation, ScxmlInvoker
from .ioprocessors import ScxmlProcessor
from .model import Document
from .registry import DEFAULT_REGISTRY, Registry
from .session import CANCELLED, FAILED, FINISHED, RUNNING, Session

DEFAULT_REGISTRY.register_processor(SCXML_PROCESSOR, ScxmlProcessor, "scxml")
DEFAULT_REGISTRY.register_processor(BASIC_HTTP, BasicHttpProcessor, "basichttp")
DEFAULT_REGISTRY.register_invoker(
    SCXML_INVOKE_TYPE, ScxmlInvoker, "scxml", "http://www.w3.org/TR/scxml"
)

__all__ = [
    "BASIC_HTTP",
    "CANCELLED",
    "DEFAULT_REGISTRY",
    "FAILED",
    "FINISHED",
    "RUNNING",
    "SCXML_INVOKE_TYPE",
    "SCXML_PROCESSOR",
    "Action",
    "AttrDict",
    "BasicHttpProcessor",
    "CommunicationError",
    "Document",
    "DocumentError",
    "Event",
    "ExecutionError",
    "Invocation",
    "Limits",
    "Problem",
    "Registry",
    "ScxmlInvoker",
    "ScxmlProcessor",
    "Session",
    "SessionHost",
    "SessionLimitError",
    "compile_document",
    "load_document",
]
