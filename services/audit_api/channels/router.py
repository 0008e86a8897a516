"""Channels (admin) and deliveries (admin, manager): ``/v1/channels``, ``/v1/deliveries``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from services.audit_api.deps import AdminDep, SessionDep, SettingsDep, require_roles
from shared.channels import service
from shared.core.auth import Principal, Role
from shared.core.encryption import secret_box
from shared.deliveries import lifecycle
from shared.schemas.channels import (
    ChannelCreate,
    ChannelCreated,
    ChannelRead,
    ChannelTestResult,
    DeliveryDetail,
    DeliveryQuery,
    DeliveryRead,
)
from shared.schemas.common import (
    Page,
    PageQuery,
    Problem,
)

router = APIRouter()

DeliveryReaderDep = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.MANAGER))]


@router.post(
    "/v1/channels",
    status_code=201,
    response_model=ChannelCreated,
    tags=["channels"],
    responses={409: {"model": Problem}, 422: {"model": Problem}},
)
async def create_channel(
    body: ChannelCreate, session: SessionDep, settings: SettingsDep, principal: AdminDep
) -> ChannelCreated:
    """Create a notification channel subscribed to some event types (and markets).

    The target and secret are never returned. A ``webhook`` channel created without a
    ``secret`` gets a generated one, in this response only.
    """
    channel, generated_secret = await service.create_channel(
        session,
        data=body,
        box=secret_box(settings),
        insecure_hosts=settings.insecure_target_hosts,
        actor=principal,
    )
    return ChannelCreated(**service.channel_read(channel).model_dump(), secret=generated_secret)


@router.get("/v1/channels", response_model=Page[ChannelRead], tags=["channels"])
async def list_channels(
    query: Annotated[PageQuery, Query()], session: SessionDep, principal: AdminDep
) -> Page[ChannelRead]:
    """Channels by name; a market-scoped key sees those of its markets only."""
    page = await service.list_channels(session, principal=principal, page=query)
    return Page(
        items=[service.channel_read(channel) for channel in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/v1/channels/{channel_id}", response_model=ChannelRead, tags=["channels"])
async def get_channel(
    channel_id: uuid.UUID, session: SessionDep, principal: AdminDep
) -> ChannelRead:
    """One channel (404 for one outside a market-scoped key's markets)."""
    channel = await service.get_channel(session, channel_id=channel_id, principal=principal)
    return service.channel_read(channel)


@router.delete("/v1/channels/{channel_id}", status_code=204, tags=["channels"])
async def delete_channel(
    channel_id: uuid.UUID, session: SessionDep, principal: AdminDep
) -> Response:
    """Delete a channel with its deliveries; nothing more is sent to it."""
    await service.delete_channel(session, channel_id=channel_id, actor=principal)
    return Response(status_code=204)


@router.post(
    "/v1/channels/{channel_id}/test",
    response_model=ChannelTestResult,
    tags=["channels"],
    responses={404: {"model": Problem}, 503: {"model": Problem}},
)
async def test_channel(
    channel_id: uuid.UUID,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    principal: AdminDep,
) -> ChannelTestResult:
    """Send a test message to the channel now and return what its target answered.

    The notifier sends it, in the channel's language, through the channel's adapter, once:
    not retried, not recorded as a delivery. ``delivered`` false with the target's status
    and answer when the target refused it; 503 when no notifier answered in time.
    """
    channel = await service.get_channel(session, channel_id=channel_id, principal=principal)
    return await service.send_channel_test(
        request.app.state.redis,
        channel_id=channel.id,
        wait_seconds=settings.delivery_timeout_seconds + settings.channel_test_wait_seconds,
    )


@router.get("/v1/deliveries", response_model=Page[DeliveryRead], tags=["deliveries"])
async def list_deliveries(
    query: Annotated[DeliveryQuery, Query()], session: SessionDep, principal: DeliveryReaderDep
) -> Page[DeliveryRead]:
    """Deliveries, newest first; ``status=dead`` is the dead-letter list. A market-scoped
    key sees those of events about its markets."""
    page = await service.list_deliveries(session, principal=principal, filters=query)
    return Page(
        items=[service.delivery_read(delivery) for delivery in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/v1/deliveries/{delivery_id}", response_model=DeliveryDetail, tags=["deliveries"])
async def get_delivery(
    delivery_id: uuid.UUID, session: SessionDep, principal: DeliveryReaderDep
) -> DeliveryDetail:
    """A delivery with every attempt made; 404 outside a market-scoped key's markets."""
    return await service.get_delivery(session, principal=principal, delivery_id=delivery_id)


@router.post(
    "/v1/deliveries/{delivery_id}/redrive",
    status_code=202,
    response_model=DeliveryRead,
    tags=["deliveries"],
    responses={404: {"model": Problem}, 409: {"model": Problem}},
)
async def redrive_delivery(
    delivery_id: uuid.UUID, session: SessionDep, principal: AdminDep
) -> DeliveryRead:
    """Send a dead-lettered delivery again: same body, fresh attempts (409 unless dead)."""
    delivery = await lifecycle.redrive(session, principal=principal, delivery_id=delivery_id)
    return service.delivery_read(delivery)
