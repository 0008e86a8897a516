"""Rules every request meets before its operation's own validation runs.

FastAPI validates each parameter and body against its schema, but some rules are about the
request as a whole and hold for every operation, present and future, so they live here once
(an application-wide dependency) instead of in each schema:

- no NUL character in a path parameter, a query parameter or any string or key of a JSON
  body (PostgreSQL text cannot hold one; refused with 422 naming where it is);
- a single-valued query parameter given once (FastAPI would silently keep the last);
- an operation that takes a JSON body gets it as ``application/json`` (or ``+json``): 415;
  console forms are form posts, checked for NUL in every field instead.

The query rules apply to operations that declare query parameters; the others ignore any
query they are sent. The cost for a request breaking none of the rules is a few string
searches (the parsed body is walked only when its text holds the ``\\u0000`` escape).

Signed webhooks read their raw bodies themselves (the signature covers the exact bytes) and
declare no body parameter, so none of the body rules touch them; their schemas refuse NUL.
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import Request, params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel

from shared.core.errors import UnprocessableEntity, UnsupportedMediaType

NUL = "\x00"
# How NUL appears in JSON text (the only way: a raw control character is not valid JSON).
_JSON_NUL_ESCAPE = b"\\u0000"

Location = tuple[str | int, ...]


async def check_request(request: Request) -> None:
    """Refuse a request breaking one of the module's rules: 415, or 422 naming each place."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    takes_form = route.body_field is not None and isinstance(
        route.body_field.field_info, params.Form
    )
    if route.body_field is not None and not takes_form:
        await _require_json_content_type(request)
    errors = _nul_in_path(request)
    if request.scope["query_string"]:
        errors.extend(_query_problems(request, route))
    if takes_form:
        errors.extend(await _nul_in_form(request))
    elif route.body_field is not None:
        errors.extend(await _nul_in_json_body(request))
    if errors:
        first = errors[0]
        raise UnprocessableEntity(
            f"{'.'.join(str(part) for part in first['loc'])}: {first['msg']}", errors=errors
        )


async def _nul_in_form(request: Request) -> list[dict[str, Any]]:
    """NUL in a field of a console form (FastAPI has parsed the form already)."""
    form = await request.form()
    return [
        {"loc": ["body", name], "msg": "must not contain the NUL character"}
        for name, value in form.multi_items()
        if isinstance(value, str) and NUL in value
    ]


async def _require_json_content_type(request: Request) -> None:
    if not await request.body():
        return  # no body: the schema says whether one is required
    content_type = request.headers.get("content-type")
    if content_type:
        # The media type without its parameters (charset=...); email.message parses the same
        # at ten times the cost.
        media_type = content_type.partition(";")[0].strip().lower()
        if media_type == "application/json" or (
            media_type.startswith("application/") and media_type.endswith("+json")
        ):
            return
    raise UnsupportedMediaType(
        f"the body must be sent as application/json, not {content_type or 'without a type'}"
    )


def _query_problems(request: Request, route: APIRoute) -> list[dict[str, Any]]:
    """NUL in a query parameter, or a single-valued one repeated.

    An operation declaring no query parameters ignores whatever query it is sent, so there is
    nothing to refuse (and no 422 to document).
    """
    items = request.query_params.multi_items()
    names = [name for name, _ in items]
    has_nul = b"%00" in request.scope["query_string"]  # a raw NUL is not valid HTTP
    if not has_nul and len(names) == len(set(names)):
        return []
    declared = dict(_query_parameters(route.dependant))
    if not declared:
        return []
    errors = [
        {"loc": ["query", name], "msg": "must be given at most once"}
        for name in sorted({name for name in names if names.count(name) > 1})
        if not declared.get(name, False)
    ]
    errors.extend(
        {"loc": ["query", name], "msg": "must not contain a NUL character"}
        for name, value in items
        if NUL in name or NUL in value
    )
    return errors


def _query_parameters(dependant: Dependant) -> Iterator[tuple[str, bool]]:
    """The query parameters of an operation (and its dependencies): whether each takes a list."""
    for field in dependant.query_params:
        annotation = field.field_info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            # A query model (``Annotated[Model, Query()]``): its fields are the parameters.
            for name, model_field in annotation.model_fields.items():
                yield model_field.alias or name, _takes_many(model_field.annotation)
        else:
            yield field.alias, _takes_many(annotation)
    for sub_dependant in dependant.dependencies:
        yield from _query_parameters(sub_dependant)


def _takes_many(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _takes_many(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return any(_takes_many(arg) for arg in get_args(annotation))
    return (
        isinstance(origin, type)
        and issubclass(origin, (Sequence, set, frozenset))
        and (origin not in (str, bytes))
    )


def _nul_in_path(request: Request) -> list[dict[str, Any]]:
    # A path parameter holds NUL only if the decoded path does: one search per request.
    if NUL not in request.scope["path"]:
        return []
    return [
        {"loc": ["path", name], "msg": "must not contain a NUL character"}
        for name, value in request.path_params.items()
        if isinstance(value, str) and NUL in value
    ]


async def _nul_in_json_body(request: Request) -> list[dict[str, Any]]:
    # Only a body whose text has the escape is parsed again (FastAPI's parse is cached): the
    # check costs one byte search for every other request.
    if _JSON_NUL_ESCAPE not in await request.body():
        return []
    # Located like pydantic's body errors once rendered: without a leading "body".
    # A key and its value can both hold NUL: one error for the place.
    return [
        {"loc": list(location) or ["body"], "msg": "must not contain a NUL character"}
        for location in dict.fromkeys(nul_locations(await request.json()))
    ]


def nul_locations(document: Any) -> Iterator[Location]:
    """Where in a parsed JSON document a string (a value or an object's key) holds NUL.

    Iterative, not recursive: a document nested as deep as the JSON parser allows must not
    exhaust the interpreter's stack here.
    """
    pending: list[tuple[Location, Any]] = [((), document)]
    while pending:
        location, value = pending.pop()
        if isinstance(value, str):
            if NUL in value:
                yield location
        elif isinstance(value, dict):
            if any(NUL in key for key in value):
                yield from ((*location, key) for key in value if NUL in key)
            # Reversed onto the stack, so that places come out in document order.
            pending.extend(((*location, key), item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            pending.extend(
                ((*location, index), item) for index, item in reversed(list(enumerate(value)))
            )
