"""Console pages: administration (people, API keys, sources, channels, deliveries).

Every page calls the same ``shared/`` functions as the admin API (``/v1/users``,
``/v1/api-keys``, ``/v1/sources``, ``/v1/channels``, ``/v1/deliveries``), validates its forms
with the API's pydantic schemas and shows their errors on the form (422). A write that is
refused leaves nothing behind: it runs in a savepoint that is rolled back. Secrets (a
person's one-time link, an API key, a source's or a channel's signing secret) are shown on
the answer to the form that made them, once, and on no page afterwards.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.audit_api.console.forms import (
    REFUSALS,
    FieldErrors,
    FormPage,
    FormRefused,
    parse,
    refusable,
)
from services.audit_api.console.session import ConsoleContext, console_page
from services.audit_api.console.templating import render
from services.audit_api.deps import SessionDep, SettingsDep
from services.audit_api.users.router import password_link_url
from shared.api_keys import service as api_keys
from shared.channels import service as channels
from shared.channels.languages import MESSAGE_LANGUAGES
from shared.core.auth import Role
from shared.core.encryption import secret_box
from shared.core.errors import ServiceUnavailable
from shared.core.settings import Settings
from shared.deliveries import lifecycle
from shared.events import EventType
from shared.schemas.auth import ApiKeyCreate, ApiKeyRead
from shared.schemas.channels import ChannelCreate, DeliveryQuery
from shared.schemas.common import PageQuery
from shared.schemas.sources import SecretRotation, SourceCreate, SourceRead
from shared.schemas.users import CONSOLE_LANGUAGES, UserCreate, UserPatch, UserRead
from shared.sources import service as sources
from shared.users import service as users

router = APIRouter(prefix="/admin")

AdminPage = Annotated[ConsoleContext, Depends(console_page(Role.ADMIN))]
# Reading deliveries is open to managers too, as in the API (GET /v1/deliveries).
DeliveryReader = Annotated[ConsoleContext, Depends(console_page(Role.ADMIN, Role.MANAGER))]
Cursor = Annotated[str | None, Query(max_length=2048)]

PAGE_SIZE = 50
ROLES = [role.value for role in Role]
CHANNEL_KINDS = ("webhook", "slack", "teams", "lark", "email")
DIGEST_MODES = ("off", "hourly", "daily")
DELIVERY_STATUSES = ("pending", "delivered", "dead")
EVENT_TYPES = [event.value for event in EventType]
# A page that shows a secret tells no other site where it came from.
_PRIVATE = {"Referrer-Policy": "no-referrer"}
_LIST_SPLIT = re.compile(r"[\s,;]+")


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _optional(form: Mapping[str, Any], name: str) -> str | None:
    return _text(form, name) or None


def _list(form: Mapping[str, Any], name: str) -> list[str] | None:
    """A field of several values separated by commas or spaces; None when empty."""
    items = [item for item in _LIST_SPLIT.split(_text(form, name)) if item]
    return items or None


async def _form(request: Request) -> dict[str, Any]:
    form = await request.form()
    values: dict[str, Any] = {}
    for key, value in form.multi_items():
        if isinstance(value, str):
            values.setdefault(key, value)
    values["__multi__"] = form
    return values


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _page_query(cursor: str | None) -> PageQuery:
    return PageQuery(limit=PAGE_SIZE, cursor=cursor)


def _ttl(settings: Settings) -> timedelta:
    return timedelta(hours=settings.password_link_ttl_hours)


def _secret_page(
    request: Request,
    context: ConsoleContext,
    *,
    title: str,
    explanation: str,
    label: str,
    value: str,
    back: str,
    back_label: str,
    who: str = "",
    status_code: int = 201,
) -> Response:
    """The one page that shows a secret: the answer to the form that made it."""
    return render(
        request,
        "admin/secret.html",
        context=context,
        status_code=status_code,
        headers=_PRIVATE,
        title=title,
        explanation=explanation,
        label=label,
        value=value,
        back=back,
        back_label=back_label,
        who=who,
    )


# ------------------------------------------------------------------------------- people


def _person_form_values(form: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "email": _text(form, "email"),
        "role": _text(form, "role"),
        "reviewer_id": _text(form, "reviewer_id"),
        "markets": _text(form, "markets"),
        "language": _text(form, "language") or "en",
    }


@router.get("/people")
async def people(
    request: Request, session: SessionDep, context: AdminPage, cursor: Cursor = None
) -> Response:
    """Everyone who may sign in, with their role, reviewer, markets and state."""
    page = await users.list_users(session, page=_page_query(cursor))
    return render(
        request,
        "admin/people.html",
        context=context,
        people=[UserRead.model_validate(user) for user in page.items],
        next_cursor=page.next_cursor,
    )


_new_person_page = FormPage(
    "admin/person_new.html",
    defaults={"language": "en", "role": "qa_auditor"},
    shows={"roles": ROLES, "languages": CONSOLE_LANGUAGES},
)


@router.get("/people/new")
async def new_person(request: Request, context: AdminPage) -> Response:
    return _new_person_page(request, context)


@router.post("/people")
async def create_person(
    request: Request, session: SessionDep, settings: SettingsDep, context: AdminPage
) -> Response:
    """Create a person (as ``POST /v1/users`` without a password): the answer shows their
    one-time link, once."""
    form = await _form(request)
    values = _person_form_values(form)
    try:
        body = parse(
            UserCreate,
            {
                "email": values["email"],
                "role": values["role"],
                "reviewer_id": values["reviewer_id"] or None,
                "markets": _list(form, "markets"),
                "language": values["language"],
            },
        )
        async with refusable(session, show=REFUSALS):
            user, token = await users.create_user(
                session,
                email=body.email,
                role=body.role,
                reviewer_id=body.reviewer_id,
                markets=body.markets,
                language=body.language,
                password=None,
                password_link_ttl=_ttl(settings),
                actor=context.principal,
            )
    except FormRefused as invalid:
        return _new_person_page(
            request, context, values=values, errors=invalid.errors, status_code=invalid.status
        )
    assert token is not None
    return _secret_page(
        request,
        context,
        title="Person created",
        explanation="Send this one-time link to %(who)s: with it they set their password."
        " It is shown only now.",
        label="One-time link",
        value=password_link_url(settings, token),
        back=f"/console/admin/people/{user.id}",
        back_label="Back to the person",
        who=user.email,
    )


_person_page = FormPage("admin/person.html", shows={"roles": ROLES, "languages": CONSOLE_LANGUAGES})


def _person_values(person: UserRead) -> dict[str, Any]:
    """The person form's values: what the person has now."""
    return {
        "role": person.role.value,
        "markets": ", ".join(person.markets or []),
        "language": person.language,
    }


@router.get("/people/{user_id}")
async def person(
    request: Request, user_id: uuid.UUID, session: SessionDep, context: AdminPage
) -> Response:
    user = await users.get_user(session, user_id=user_id)
    shown = UserRead.model_validate(user)
    return _person_page(request, context, person=shown, values=_person_values(shown))


@router.post("/people/{user_id}")
async def update_person(
    request: Request, user_id: uuid.UUID, session: SessionDep, context: AdminPage
) -> Response:
    """Change role, markets or language (as ``PATCH /v1/users/{id}``): the person's
    sessions end when role or markets change."""
    current = UserRead.model_validate(await users.get_user(session, user_id=user_id))
    form = await _form(request)
    values = {
        "role": _text(form, "role"),
        "markets": _text(form, "markets"),
        "language": _text(form, "language"),
    }
    markets = _list(form, "markets")
    try:
        body = parse(
            UserPatch,
            {
                "role": values["role"] if values["role"] != current.role.value else None,
                "markets": markets if markets != (current.markets or None) else None,
                "language": values["language"] if values["language"] != current.language else None,
            },
        )
        async with refusable(session, show=REFUSALS):
            await users.update_user(
                session,
                user_id=user_id,
                role=body.role,
                markets=body.markets,
                language=body.language,
                actor=context.principal,
            )
    except FormRefused as invalid:
        return _person_page(
            request,
            context,
            person=current,
            values=values,
            errors=invalid.errors,
            status_code=invalid.status,
        )
    return _see_other(f"/console/admin/people/{user_id}")


async def _set_disabled(
    session: AsyncSession, context: ConsoleContext, user_id: uuid.UUID, disabled: bool
) -> Response:
    await users.update_user(session, user_id=user_id, disabled=disabled, actor=context.principal)
    return _see_other(f"/console/admin/people/{user_id}")


@router.post("/people/{user_id}/disable")
async def disable_person(user_id: uuid.UUID, session: SessionDep, context: AdminPage) -> Response:
    """Disable a person: they cannot sign in, and their sessions end at once."""
    return await _set_disabled(session, context, user_id, True)


@router.post("/people/{user_id}/enable")
async def enable_person(user_id: uuid.UUID, session: SessionDep, context: AdminPage) -> Response:
    return await _set_disabled(session, context, user_id, False)


@router.post("/people/{user_id}/password-link")
async def new_password_link(
    request: Request,
    user_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    context: AdminPage,
) -> Response:
    """A new one-time link (earlier unused ones stop working), shown once."""
    user = await users.get_user(session, user_id=user_id)
    token = await users.issue_password_link(session, user=user, ttl=_ttl(settings))
    return _secret_page(
        request,
        context,
        title="New one-time link",
        explanation="Send this one-time link to %(who)s: with it they set their password."
        " Earlier links stop working. It is shown only now.",
        label="One-time link",
        value=password_link_url(settings, token),
        back=f"/console/admin/people/{user.id}",
        back_label="Back to the person",
        who=user.email,
    )


# ----------------------------------------------------------------------------- API keys


@router.get("/api-keys")
async def api_key_list(
    request: Request, session: SessionDep, context: AdminPage, cursor: Cursor = None
) -> Response:
    """The API keys: name, role, prefix, scope, state (never the key)."""
    page = await api_keys.list_api_keys(session, page=_page_query(cursor))
    return render(
        request,
        "admin/api_keys.html",
        context=context,
        keys=[ApiKeyRead.model_validate(key) for key in page.items],
        next_cursor=page.next_cursor,
    )


_new_api_key_page = FormPage(
    "admin/api_key_new.html", defaults={"role": "manager"}, shows={"roles": ROLES}
)


@router.get("/api-keys/new")
async def new_api_key(request: Request, context: AdminPage) -> Response:
    return _new_api_key_page(request, context)


@router.post("/api-keys")
async def create_api_key(request: Request, session: SessionDep, context: AdminPage) -> Response:
    """Create a key (as ``POST /v1/api-keys``): the answer shows it, once."""
    form = await _form(request)
    values = {
        "name": _text(form, "name"),
        "role": _text(form, "role"),
        "reviewer_id": _text(form, "reviewer_id"),
        "markets": _text(form, "markets"),
    }
    try:
        body = parse(
            ApiKeyCreate,
            {
                "name": values["name"],
                "role": values["role"],
                "reviewer_id": values["reviewer_id"] or None,
                "markets": _list(form, "markets"),
            },
        )
        async with refusable(session, show=REFUSALS):
            _, plaintext = await api_keys.create_api_key(
                session,
                name=body.name,
                role=body.role,
                reviewer_id=body.reviewer_id,
                markets=body.markets,
                actor=context.principal,
            )
    except FormRefused as invalid:
        return _new_api_key_page(
            request, context, values=values, errors=invalid.errors, status_code=invalid.status
        )
    return _secret_page(
        request,
        context,
        title="API key created",
        explanation="Store the key %(who)s now: it is shown only this once and stored hashed.",
        label="API key",
        value=plaintext,
        back="/console/admin/api-keys",
        back_label="Back to the API keys",
        who=body.name,
    )


@router.post("/api-keys/{key_id}/revoke")
async def revoke_api_key(key_id: uuid.UUID, session: SessionDep, context: AdminPage) -> Response:
    """Revoke a key (as ``DELETE /v1/api-keys/{id}``); it stops working at once."""
    await api_keys.revoke_api_key(session, key_id=key_id, actor=context.principal)
    return _see_other("/console/admin/api-keys")


# ------------------------------------------------------------------------------ sources


@router.get("/sources")
async def source_list(
    request: Request, session: SessionDep, context: AdminPage, cursor: Cursor = None
) -> Response:
    """The moderation platforms that post decisions (never their secrets)."""
    page = await sources.list_sources(session, page=_page_query(cursor))
    return render(
        request,
        "admin/sources.html",
        context=context,
        sources=[SourceRead.model_validate(source) for source in page.items],
        next_cursor=page.next_cursor,
        errors={},
        values={},
        default_grace=SecretRotation().grace_period_seconds,
    )


_new_source_page = FormPage("admin/source_new.html")


@router.get("/sources/new")
async def new_source(request: Request, context: AdminPage) -> Response:
    return _new_source_page(request, context)


@router.post("/sources")
async def create_source(
    request: Request, session: SessionDep, settings: SettingsDep, context: AdminPage
) -> Response:
    """Register a source (as ``POST /v1/sources``): the answer shows its secret, once."""
    form = await _form(request)
    values = {"name": _text(form, "name")}
    try:
        body = parse(SourceCreate, values)
        async with refusable(session, show=REFUSALS):
            source, secret = await sources.create_source(
                session, name=body.name, box=secret_box(settings), actor=context.principal
            )
    except FormRefused as invalid:
        return _new_source_page(
            request, context, values=values, errors=invalid.errors, status_code=invalid.status
        )
    return _secret_page(
        request,
        context,
        title="Source created",
        explanation="The signing secret of %(who)s: store it in the platform now; it is"
        " shown only this once.",
        label="Signing secret",
        value=secret,
        back="/console/admin/sources",
        back_label="Back to the sources",
        who=source.name,
    )


@router.post("/sources/{source_id}/rotate")
async def rotate_source_secret(
    request: Request,
    source_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    context: AdminPage,
) -> Response:
    """A new secret (as ``POST /v1/sources/{id}/rotate-secret``); the previous one is
    accepted for the grace period more."""
    form = await _form(request)
    try:
        body = parse(SecretRotation, {"grace_period_seconds": _text(form, "grace_period_seconds")})
    except FormRefused as invalid:
        page = await sources.list_sources(session, page=_page_query(None))
        return render(
            request,
            "admin/sources.html",
            context=context,
            status_code=invalid.status,
            sources=[SourceRead.model_validate(source) for source in page.items],
            next_cursor=page.next_cursor,
            errors={str(source_id): invalid.errors.get("grace_period_seconds", ["?"])},
            values={str(source_id): _text(form, "grace_period_seconds")},
            default_grace=SecretRotation().grace_period_seconds,
        )
    source, secret = await sources.rotate_secret(
        session,
        source_id=source_id,
        grace=timedelta(seconds=body.grace_period_seconds),
        box=secret_box(settings),
        actor=context.principal,
    )
    request.app.state.sources.forget(source.name)
    return _secret_page(
        request,
        context,
        title="Secret rotated",
        explanation="The new signing secret of %(who)s: store it in the platform now; it is"
        " shown only this once. The previous one is still accepted during the grace period.",
        label="Signing secret",
        value=secret,
        back="/console/admin/sources",
        back_label="Back to the sources",
        who=source.name,
    )


# ----------------------------------------------------------------------------- channels


@router.get("/channels")
async def channel_list(
    request: Request, session: SessionDep, context: AdminPage, cursor: Cursor = None
) -> Response:
    """The channels as the API shows them: the target as its hint, the secret as a yes/no."""
    page = await channels.list_channels(
        session, principal=context.principal, page=_page_query(cursor)
    )
    return render(
        request,
        "admin/channels.html",
        context=context,
        channels=[channels.channel_read(channel) for channel in page.items],
        next_cursor=page.next_cursor,
    )


_new_channel_page = FormPage(
    "admin/channel_new.html",
    defaults={
        "kind": "webhook",
        "language": "en",
        "events": [],
        "digest": "off",
        "digest_hour": "9",
        "time_zone": "UTC",
    },
    shows={
        "kinds": CHANNEL_KINDS,
        "languages": MESSAGE_LANGUAGES,
        "event_types": EVENT_TYPES,
        "digest_modes": DIGEST_MODES,
    },
)


@router.get("/channels/new")
async def new_channel(request: Request, context: AdminPage) -> Response:
    return _new_channel_page(request, context)


def _channel_body(form: Mapping[str, Any]) -> dict[str, Any]:
    multi = form["__multi__"]
    body: dict[str, Any] = {
        "name": _text(form, "name"),
        "kind": _text(form, "kind"),
        "target": _text(form, "target"),
        "language": _text(form, "language"),
        "events": [value for value in multi.getlist("events") if isinstance(value, str)],
        "markets": _list(form, "markets"),
        "queues": _list(form, "queues"),
        "digest": _text(form, "digest") or "off",
        "digest_hour": _text(form, "digest_hour") or "9",
        "time_zone": _text(form, "time_zone") or "UTC",
        "secret": _optional(form, "secret"),
        "standard_webhooks": _text(form, "standard_webhooks") == "on",
    }
    oauth = {
        "token_url": _text(form, "oauth_token_url"),
        "client_id": _text(form, "oauth_client_id"),
        "client_secret": _text(form, "oauth_client_secret"),
        "scope": _optional(form, "oauth_scope"),
    }
    if any(oauth.values()):
        body["oauth"] = oauth
    return body


@router.post("/channels")
async def create_channel(
    request: Request, session: SessionDep, settings: SettingsDep, context: AdminPage
) -> Response:
    """Create a channel (as ``POST /v1/channels``). A webhook channel created without a
    secret gets one, shown on the answer only."""
    form = await _form(request)
    body_values = _channel_body(form)
    # What the form shows again after a refusal: never the target's or a secret's text.
    shown = {
        key: value
        for key, value in body_values.items()
        if key not in ("secret", "oauth", "markets", "queues")
    }
    shown.update(markets=_text(form, "markets"), queues=_text(form, "queues"))
    try:
        body = parse(ChannelCreate, body_values)
        async with refusable(session, show=REFUSALS):
            channel, generated = await channels.create_channel(
                session,
                data=body,
                box=secret_box(settings),
                insecure_hosts=settings.insecure_target_hosts,
                actor=context.principal,
            )
    except FormRefused as invalid:
        return _new_channel_page(
            request, context, values=shown, errors=invalid.errors, status_code=invalid.status
        )
    if generated is None:
        return _see_other(f"/console/admin/channels/{channel.id}")
    return _secret_page(
        request,
        context,
        title="Channel created",
        explanation="The generated signing secret of %(who)s: give it to the receiver now;"
        " it is shown only this once.",
        label="Signing secret",
        value=generated,
        back=f"/console/admin/channels/{channel.id}",
        back_label="Back to the channel",
        who=channel.name,
    )


@router.get("/channels/{channel_id}")
async def channel_page(
    request: Request, channel_id: uuid.UUID, session: SessionDep, context: AdminPage
) -> Response:
    channel = await channels.get_channel(
        session, channel_id=channel_id, principal=context.principal
    )
    return render(
        request,
        "admin/channel.html",
        context=context,
        channel=channels.channel_read(channel),
        result=None,
        test_error=None,
    )


@router.post("/channels/{channel_id}/test")
async def test_channel(
    request: Request,
    channel_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    context: AdminPage,
) -> Response:
    """Send the channel's test message now (as ``POST /v1/channels/{id}/test``) and show
    what its target answered; an HTMX request gets the result alone."""
    channel = await channels.get_channel(
        session, channel_id=channel_id, principal=context.principal
    )
    result, test_error, status_code = None, None, 200
    try:
        result = await channels.send_channel_test(
            request.app.state.redis,
            channel_id=channel.id,
            wait_seconds=settings.delivery_timeout_seconds + settings.channel_test_wait_seconds,
        )
    except ServiceUnavailable as exc:
        test_error, status_code = exc.detail, exc.status
    if request.headers.get("hx-request") == "true":
        # HTMX swaps only successful answers: the fragment carries the failure itself.
        return render(
            request,
            "admin/_test_result.html",
            context=context,
            result=result,
            test_error=test_error,
        )
    return render(
        request,
        "admin/channel.html",
        context=context,
        status_code=status_code,
        channel=channels.channel_read(channel),
        result=result,
        test_error=test_error,
    )


@router.post("/channels/{channel_id}/delete")
async def delete_channel(
    channel_id: uuid.UUID, session: SessionDep, context: AdminPage
) -> Response:
    """Delete a channel with its deliveries (as ``DELETE /v1/channels/{id}``)."""
    await channels.delete_channel(session, channel_id=channel_id, actor=context.principal)
    return _see_other("/console/admin/channels")


# --------------------------------------------------------------------------- deliveries


@router.get("/deliveries")
async def delivery_list(
    request: Request,
    session: SessionDep,
    context: DeliveryReader,
    status: Annotated[str, Query(max_length=16)] = "",
    channel_id: Annotated[str, Query(max_length=64)] = "",
    cursor: Cursor = None,
) -> Response:
    """Deliveries, newest first, filtered by status and channel (``status=dead`` is the
    dead-letter list)."""
    errors: FieldErrors = {}
    try:
        filters = parse(
            DeliveryQuery,
            {
                "limit": PAGE_SIZE,
                "cursor": cursor,
                "status": status or None,
                "channel_id": channel_id or None,
            },
        )
    except FormRefused as invalid:
        errors = invalid.errors
        filters = DeliveryQuery(limit=PAGE_SIZE)
    page = await channels.list_deliveries(session, principal=context.principal, filters=filters)
    # Channel names only for those who may read channels (GET /v1/channels: admin).
    names: dict[uuid.UUID, str] = {}
    if context.role == Role.ADMIN:
        listed = await channels.list_channels(
            session, principal=context.principal, page=PageQuery(limit=1000)
        )
        names = {channel.id: channel.name for channel in listed.items}
    return render(
        request,
        "admin/deliveries.html",
        context=context,
        status_code=422 if errors else 200,
        deliveries=[channels.delivery_read(delivery) for delivery in page.items],
        next_cursor=page.next_cursor,
        channel_names=names,
        statuses=DELIVERY_STATUSES,
        status=status,
        channel_id=channel_id,
        errors=errors,
    )


@router.get("/deliveries/{delivery_id}")
async def delivery_page(
    request: Request, delivery_id: uuid.UUID, session: SessionDep, context: DeliveryReader
) -> Response:
    """A delivery with every attempt made."""
    delivery = await channels.get_delivery(
        session, principal=context.principal, delivery_id=delivery_id
    )
    return render(request, "admin/delivery.html", context=context, delivery=delivery)


@router.post("/deliveries/{delivery_id}/redrive")
async def redrive_delivery(
    delivery_id: uuid.UUID, session: SessionDep, context: AdminPage
) -> Response:
    """Send a dead-lettered delivery again (as ``POST /v1/deliveries/{id}/redrive``)."""
    await lifecycle.redrive(session, principal=context.principal, delivery_id=delivery_id)
    return _see_other(f"/console/admin/deliveries/{delivery_id}")
