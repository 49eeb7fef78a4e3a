"""The API contract, declared on each handler beside its route (``@operation(...)``).

The OpenAPI document (``openapi.py``) is built by walking the application's router and reading
what each handler declares here, so a route and its description cannot drift apart: a route
whose handler declares nothing has no entry, and ``tests/api/test_openapi.py`` fails on it.

Errors every route shares are not repeated on each: ``openapi.py`` adds 401/403 to the routes
that need a key, 503 to the changing ones (storage failing or a write not saved), 400/413 to the
ones with a body.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

Schema = dict[str, Any]
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
ATTRIBUTE = "__api_operation__"
F = TypeVar("F", bound=Callable[..., Any])
NOT_JSON_OR_FORM = {415: "the body is neither JSON nor a form"}  # what body.read_params refuses


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


@dataclass(frozen=True)
class Param:
    """A query parameter."""

    name: str
    description: str
    schema: Schema = field(default_factory=lambda: {"type": "string"})
    required: bool = False
    example: str | None = None


@dataclass(frozen=True)
class Body:
    """The request body, the same schema under each media type it may come as."""

    schema: Schema
    media: tuple[str, ...] = (JSON,)
    description: str = ""
    example: Any = None  # a body that works with the shipped configuration (shown in /docs, tried first)


@dataclass(frozen=True)
class Answer:
    """One answer: a status and its body (``contents``: media type -> schema); ``links``: what a
    client may do next with it, as OpenAPI links (name -> the operation id, the handler's name, and
    its parameters as runtime expressions such as ``$response.body#/_id``)."""

    status: int
    description: str
    contents: dict[str, Schema] = field(default_factory=dict)
    links: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)


def ok(schema: Schema, description: str = "done", status: int = 200,
       links: dict[str, tuple[str, dict[str, str]]] | None = None) -> Answer:
    return Answer(status, description, {JSON: schema}, links or {})


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    answers: tuple[Answer, ...]
    errors: dict[int, str] = field(default_factory=dict)  # status -> when
    query: tuple[Param, ...] = ()
    body: Body | None = None
    path: dict[str, str] = field(default_factory=dict)  # path parameter -> what it names
    examples: dict[str, str] = field(default_factory=dict)  # path parameter -> a value that exists as shipped
    open: bool = False  # no key needed
    description: str = ""


def operation(summary: str, tag: str, answers: Answer | tuple[Answer, ...], **kw: Any) -> Callable[[F], F]:
    """Declare what a handler takes and answers; stacked under its route decorators."""
    declared = Operation(summary, tag, answers if isinstance(answers, tuple) else (answers,), **kw)

    def attach(handler: F) -> F:
        setattr(handler, ATTRIBUTE, declared)
        return handler

    return attach


def operation_of(handler: Callable[..., Any]) -> Operation | None:
    return getattr(handler, ATTRIBUTE, None)
