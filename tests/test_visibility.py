"""One visibility rule per entity, applied by its list and its reads alike.

A moderator key sees only its own reviewer's objects. A key with the moderator role but no
reviewer (the API refuses to create one, but `plumbline api-key create` or a stored row may
hold one) must therefore see nothing, not everything.
"""

from __future__ import annotations

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.models import Decision
from tests.conftest import SignedSender, auth, decision_event, make_key


async def test_a_moderator_key_bound_to_no_reviewer_sees_no_decision(
    sender: SignedSender,
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    response = await sender.post({"events": [decision_event(1), decision_event(2)]})
    assert response.status_code == 202, response.text
    async with sessionmaker() as session:
        decision_id = await session.scalar(select(Decision.id).limit(1))
    unbound = auth(await make_key(sessionmaker, "moderator"))
    own = auth(await make_key(sessionmaker, "moderator", reviewer_id="mod-42"))

    listed = await client.get("/v1/decisions", headers=unbound)
    assert listed.status_code == 200
    assert listed.json()["items"] == []
    assert (await client.get(f"/v1/decisions/{decision_id}", headers=unbound)).status_code == 404
    # The moderator the decisions are about sees them, by list and by id.
    assert len((await client.get("/v1/decisions", headers=own)).json()["items"]) == 2
    assert (await client.get(f"/v1/decisions/{decision_id}", headers=own)).status_code == 200
