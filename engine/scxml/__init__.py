"""Our SCXML interpreter: W3C SCXML 1.0 with python and null datamodels.

It knows nothing of callbacks. Compile a document once (``compile_document`` /
``load_document``), then run any number of sessions of it in a ``SessionHost``.

Where things live: ``model`` (the immutable compiled document), ``compiler``, ``algorithm`` (the
W3C selection, conflict and exit/entry-set functions over plain inputs), ``transition_cache``
(what sessions of a document learn at run time), ``datamodel`` (the ``DataModel`` port, python
and null), ``session`` (queues, sends, timers, invocations; runs what the algorithm decides),
``session_state`` / ``snapshot`` (a session as a value, and as JSON), ``host``. Below the
session and the host, executable content, event I/O processors and invokers see them only through
the Protocols of ``ports`` (``RunningSession``, ``ProcessorHost``, ``InvokerHost``, ...), which
is also what a ``registry`` checks a processor (``EventProcessor``) or an invoker (``Invoker``)
against. ``standard_registry()`` builds a registry of the standard processors and invoker;
importing this package registers nothing anywhere (``DEFAULT_REGISTRY`` is one such registry).

How events move, one verb each:

* ``Session.send`` - an external event queued and processed at once (the synchronous entry).
* ``Session.deliver`` - an external event from elsewhere, processed on a later loop turn.
* ``Session.queue`` - an external event put on a rebuilt session's queue, unprocessed until
  ``Session.resume``.
* ``Session.raise_internal`` - an internal event raised during a macrostep (``<raise>``);
  ``Session.post_internal`` (and ``post_error``) - one from outside a macrostep, drained later.
* ``Session.dispatch`` - a ``<send>`` handed to its Event I/O Processor, at once or on a timer.
* ``Invocation.forward`` - an event into an invoked child (``#_<invokeid>``, autoforward).
* ``SessionHost.route_event`` - an event leaving one session for another session of the host
  (a persisting host holds it until the sender's new state is durable).
* ``SessionHost.emit`` - an effect leaving the engine (a Basic HTTP send, a platform request),
  recorded by a persisting host unless it goes to a party that does not outlive the process;
  ``SessionHost.perform_effect`` - carrying such an effect out.

A session's data: ``Session.datamodel`` is its ``DataModel`` (the only way to its variables);
``Session.variables`` a copy of the author's variables; ``Document.datamodel`` the
``DataModelKind`` that compiled the document.
"""

from .basichttp import BASIC_HTTP, BasicHttpProcessor
from .compiler import compile_document, load_document, over_limits
from .errors import CommunicationError, DocumentError, ExecutionError, Problem, SessionLimitError
from .events import AttrDict, Event
from .executable import SCXML_PROCESSOR, Action
from .host import Limits, SessionHost
from .invokers import SCXML_INVOKE_TYPE, Invocation, ScxmlInvoker
from .ioprocessors import ScxmlProcessor
from .model import Document
from .ports import EventProcessor, Invoker
from .registry import Registry
from .session import CANCELLED, FAILED, FINISHED, RUNNING, Session
from .standard import DEFAULT_REGISTRY, standard_registry

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
    "EventProcessor",
    "ExecutionError",
    "Invocation",
    "Invoker",
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
    "over_limits",
    "standard_registry",
]
