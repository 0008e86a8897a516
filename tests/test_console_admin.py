"""The console's admin pages over real HTTP (and one browser test): people, API keys,
sources, channels with "Send test", deliveries with redrive.

Each page calls the admin API's domain functions and schemas: the same validation (errors
on the form, 422, nothing stored), the same audit log, secrets shown once on the answer to
the form that made them and on no page afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import Page, expect
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.core.settings import Settings
from shared.models import ApiKey, AuditLogEntry, Channel, Delivery, Source, User
from shared.models.reference import Reviewer
from tests.conftest import LiveServer, auth
from tests.support.console import ConsoleClient, make_person
from tests.support.console_admin import make_deliveries, shown_secret, signed_in
from tests.support.webhooks import Reply, WebhookReceiver, notifier_running

ADMIN_PAGES = (
    "/console/admin/people",
    "/console/admin/people/new",
    "/console/admin/api-keys",
    "/console/admin/api-keys/new",
    "/console/admin/sources",
    "/console/admin/sources/new",
    "/console/admin/channels",
    "/console/admin/channels/new",
    "/console/admin/deliveries",
)


async def count(sessionmaker: async_sessionmaker[AsyncSession], model: type) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def audit_actions(sessionmaker: async_sessionmaker[AsyncSession]) -> list[tuple[str, str]]:
    async with sessionmaker() as session:
        rows = await session.execute(
            select(AuditLogEntry.action, AuditLogEntry.actor_key_id).order_by(AuditLogEntry.id)
        )
    return [(action, actor or "") for action, actor in rows]


async def all_pages(console: ConsoleClient, *extra: str) -> str:
    """Every admin page's HTML (and ``extra`` pages), to look for leaked secrets."""
    texts = []
    for path in (*ADMIN_PAGES, *extra):
        response = await console.page(path)
        assert response.status_code == 200, (path, response.text)
        texts.append(response.text)
    return "\n".join(texts)


# ---------------------------------------------------------------------------- people


async def test_an_admin_creates_a_person_and_sees_the_one_time_link_once(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with signed_in(live_server.url, sessionmaker) as console:
        form = await console.page("/console/admin/people/new")
        assert 'name="csrf_token"' in form.text
        created = await console.post(
            "/console/admin/people",
            {
                "email": "New.Auditor@Example.com",
                "role": "qa_auditor",
                "reviewer_id": "aud-7",
                "markets": "de, at",
                "language": "de",
            },
        )
        assert created.status_code == 201, created.text
        link = shown_secret(created.text)
        assert link.startswith(f"{settings.public_url}/console/password?token=")
        assert created.headers["referrer-policy"] == "no-referrer"
        assert created.headers["cache-control"] == "no-store"

        async with sessionmaker() as session:
            user = await session.scalar(select(User).where(User.email == "new.auditor@example.com"))
        assert user is not None
        assert (user.role, user.reviewer_id, user.markets, user.language) == (
            "qa_auditor",
            "aud-7",
            ["AT", "DE"],
            "de",
        )
        assert user.password_hash is None

        everything = await all_pages(console, f"/console/admin/people/{user.id}")
        assert "new.auditor@example.com" in everything
        token = link.split("token=")[1]
        assert token not in everything

        # Created by this admin, in the audit log, through the shared function.
        async with sessionmaker() as session:
            admin_id = await session.scalar(select(User.id).where(User.role == "admin"))
        assert ("user.created", f"user:{admin_id}") in await audit_actions(sessionmaker)

    # The link works: the page to set the password opens for that person.
    async with ConsoleClient(live_server.url) as anonymous:
        opened = await anonymous.http.get(urlsplit(link).path + "?" + urlsplit(link).query)
        assert opened.status_code == 200
        assert "new.auditor@example.com" in opened.text


@pytest.mark.parametrize(
    ("form", "field_error"),
    [
        ({"email": "not an address", "role": "manager"}, "email"),
        ({"email": "m@example.com", "role": "moderator"}, "must be bound to a reviewer_id"),
        ({"email": "m@example.com", "role": "overlord"}, "Input should be"),
        ({"email": "m@example.com", "role": "manager", "markets": "DE, XX1"}, "markets"),
        ({"email": "m@example.com", "role": "manager", "language": "fr"}, "language"),
    ],
)
async def test_a_bad_person_form_is_shown_again_with_its_errors_and_nothing_stored(
    live_server: LiveServer,
    sessionmaker: async_sessionmaker[AsyncSession],
    form: dict[str, str],
    field_error: str,
) -> None:
    async with signed_in(live_server.url, sessionmaker) as console:
        await console.page("/console/admin/people/new")
        refused = await console.post("/console/admin/people", form)
        assert refused.status_code == 422, refused.text
        assert "The form was not saved" in refused.text
        assert field_error in refused.text or f'id="{field_error}-error"' in refused.text
        # A field's error marks the field; a rule across fields is said above the form.
        assert ('aria-invalid="true"' in refused.text) != field_error.startswith("must")
        # What was typed is kept.
        assert f'value="{form["email"]}"' in refused.text
    assert await count(sessionmaker, User) == 1  # the admin only


async def test_a_second_person_with_the_same_email_is_refused_on_the_form(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    await make_person(sessionmaker, "manager", email="taken@example.com")
    async with signed_in(live_server.url, sessionmaker) as console:
        await console.page("/console/admin/people/new")
        refused = await console.post(
            "/console/admin/people",
            {"email": "TAKEN@example.com", "role": "qa_auditor", "reviewer_id": "brand-new"},
        )
        assert refused.status_code == 409
        assert "exists already" in refused.text
    async with sessionmaker() as session:
        # Nothing half-stored: not even the reviewer the form named.
        assert await session.scalar(select(Reviewer).where(Reviewer.id == "brand-new")) is None
    assert await count(sessionmaker, User) == 2


async def test_an_admin_changes_role_and_markets_disables_enables_and_issues_a_new_link(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    person = await make_person(sessionmaker, "manager", markets=["DE"])
    async with signed_in(live_server.url, sessionmaker) as admin:
        async with ConsoleClient(live_server.url) as theirs:
            assert (await theirs.sign_in(person)).status_code == 303
            page = await admin.page(f"/console/admin/people/{person.id}")
            assert page.status_code == 200
            assert 'value="DE"' in page.text
            changed = await admin.post(
                f"/console/admin/people/{person.id}",
                {"role": "policy_poc", "markets": "DE AT", "language": "en"},
            )
            assert changed.status_code == 303
            assert changed.headers["location"] == f"/console/admin/people/{person.id}"
            # A changed role ends their sessions.
            assert (await theirs.http.get("/console/account")).status_code == 303

        async with sessionmaker() as session:
            user = await session.get(User, person.id)
            assert user is not None
            assert (user.role, user.markets) == ("policy_poc", ["AT", "DE"])

        bad = await admin.post(
            f"/console/admin/people/{person.id}",
            {"role": "policy_poc", "markets": "Germany", "language": "en"},
        )
        assert bad.status_code == 422
        assert 'id="markets-error"' in bad.text
        assert 'value="Germany"' in bad.text

        disabled = await admin.post(f"/console/admin/people/{person.id}/disable")
        assert disabled.status_code == 303
        async with ConsoleClient(live_server.url) as theirs:
            assert (await theirs.sign_in(person)).status_code == 401
        page = await admin.page(f"/console/admin/people/{person.id}")
        assert "disabled since" in page.text
        assert (await admin.post(f"/console/admin/people/{person.id}/enable")).status_code == 303
        async with ConsoleClient(live_server.url) as theirs:
            assert (await theirs.sign_in(person)).status_code == 303

        first = shown_secret(
            (await admin.post(f"/console/admin/people/{person.id}/password-link")).text
        )
        second_page = await admin.post(f"/console/admin/people/{person.id}/password-link")
        assert second_page.status_code == 201
        second = shown_secret(second_page.text)
        assert first != second
        everything = await all_pages(admin, f"/console/admin/people/{person.id}")
        assert first.split("token=")[1] not in everything
        assert second.split("token=")[1] not in everything
    async with ConsoleClient(live_server.url) as anonymous:
        # Earlier unused links stop working when a new one is issued.
        assert (
            await anonymous.http.get(urlsplit(first).path + "?" + urlsplit(first).query)
        ).status_code == 404
        assert (
            await anonymous.http.get(urlsplit(second).path + "?" + urlsplit(second).query)
        ).status_code == 200

    actions = [action for action, _ in await audit_actions(sessionmaker)]
    assert actions.count("user.updated") == 3


async def test_an_unknown_person_is_a_404_page(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with signed_in(live_server.url, sessionmaker) as console:
        missing = await console.page(f"/console/admin/people/{uuid.uuid4()}")
        assert missing.status_code == 404
        assert "text/html" in missing.headers["content-type"]
        assert (await console.page("/console/admin/people/not-a-uuid")).status_code == 422


# -------------------------------------------------------------------------- API keys


async def test_an_api_key_is_shown_once_works_and_is_revoked(
    live_server: LiveServer,
    sessionmaker: async_sessionmaker[AsyncSession],
    client: httpx.AsyncClient,
) -> None:
    async with signed_in(live_server.url, sessionmaker) as console:
        await console.page("/console/admin/api-keys/new")
        created = await console.post(
            "/console/admin/api-keys", {"name": "reporting", "role": "manager", "markets": "DE"}
        )
        assert created.status_code == 201, created.text
        key = shown_secret(created.text)
        # A working manager key: refused this admin endpoint (403), not unknown (401).
        assert (await client.get("/v1/api-keys", headers=auth(key))).status_code == 403

        listing = await console.page("/console/admin/api-keys")
        assert "reporting" in listing.text
        everything = await all_pages(console)
        assert key not in everything
        assert key[10:] not in everything

        async with sessionmaker() as session:
            key_id = await session.scalar(select(ApiKey.id).where(ApiKey.name == "reporting"))
        assert 'data-confirm="Revoke the key reporting?' in listing.text
        revoked = await console.post(f"/console/admin/api-keys/{key_id}/revoke")
        assert revoked.status_code == 303
        assert (await client.get("/v1/api-keys", headers=auth(key))).status_code == 401
        assert "revoked" in (await console.page("/console/admin/api-keys")).text
    actions = [action for action, _ in await audit_actions(sessionmaker)]
    assert {"api_key.created", "api_key.revoked"} <= set(actions)


async def test_a_bad_api_key_form_is_refused_with_nothing_stored(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with signed_in(live_server.url, sessionmaker) as console:
        await console.page("/console/admin/api-keys/new")
        no_reviewer = await console.post(
            "/console/admin/api-keys", {"name": "mod", "role": "moderator"}
        )
        assert no_reviewer.status_code == 422
        assert "must be bound to a reviewer_id" in no_reviewer.text
        no_name = await console.post("/console/admin/api-keys", {"name": "", "role": "manager"})
        assert no_name.status_code == 422
        assert 'id="name-error"' in no_name.text
    assert await count(sessionmaker, ApiKey) == 0


# --------------------------------------------------------------------------- sources


async def test_a_source_secret_is_shown_once_and_rotated(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with signed_in(live_server.url, sessionmaker) as console:
        await console.page("/console/admin/sources/new")
        created = await console.post("/console/admin/sources", {"name": "acme"})
        assert created.status_code == 201, created.text
        secret = shown_secret(created.text)
        assert secret.startswith("whsec_")

        taken = await console.post("/console/admin/sources", {"name": "acme"})
        assert taken.status_code == 409
        bad = await console.post("/console/admin/sources", {"name": "a b/c"})
        assert bad.status_code == 422
        assert 'id="name-error"' in bad.text

        async with sessionmaker() as session:
            source_id = await session.scalar(select(Source.id).where(Source.name == "acme"))
        too_long = await console.post(
            f"/console/admin/sources/{source_id}/rotate", {"grace_period_seconds": "-5"}
        )
        assert too_long.status_code == 422
        assert f'id="grace-{source_id}-error"' in too_long.text
        rotated = await console.post(
            f"/console/admin/sources/{source_id}/rotate", {"grace_period_seconds": "60"}
        )
        assert rotated.status_code == 201
        new_secret = shown_secret(rotated.text)
        assert new_secret != secret

        everything = await all_pages(console)
        assert secret not in everything
        assert new_secret not in everything
        assert "acme" in everything
    assert await count(sessionmaker, Source) == 1
    actions = [action for action, _ in await audit_actions(sessionmaker)]
    assert {"source.created", "source.secret_rotated"} <= set(actions)


# -------------------------------------------------------------------------- channels


async def test_a_channel_is_created_and_never_shows_its_target_or_secret(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    target = "https://hooks.example.com/services/T000/B000/very-secret-path"
    async with signed_in(live_server.url, sessionmaker) as console:
        await console.page("/console/admin/channels/new")
        created = await console.post(
            "/console/admin/channels",
            {
                "name": "ops",
                "kind": "webhook",
                "target": target,
                "language": "de",
                "events": ["source.rejected_batch", "escalation.opened"],
                "markets": "DE",
                "time_zone": "Europe/Berlin",
            },
        )
        assert created.status_code == 201, created.text
        secret = shown_secret(created.text)
        async with sessionmaker() as session:
            channel = await session.scalar(select(Channel).where(Channel.name == "ops"))
        assert channel is not None
        assert channel.events == ["source.rejected_batch", "escalation.opened"]
        assert channel.markets == ["DE"]
        assert channel.time_zone == "Europe/Berlin"

        detail = await console.page(f"/console/admin/channels/{channel.id}")
        assert "https://hooks.example.com/…" in detail.text
        everything = await all_pages(console, f"/console/admin/channels/{channel.id}")
        assert "very-secret-path" not in everything
        assert secret not in everything

        # With its own secret: no secret page, straight to the channel.
        own = await console.post(
            "/console/admin/channels",
            {
                "name": "ops two",
                "kind": "webhook",
                "target": target,
                "language": "en",
                "events": ["source.rejected_batch"],
                "secret": "a-secret-of-enough-length",
            },
        )
        assert own.status_code == 303
        assert "a-secret-of-enough-length" not in await all_pages(console)
    actions = [action for action, _ in await audit_actions(sessionmaker)]
    assert actions.count("channel.created") == 2


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"target": "ftp://example.com/x"}, 'id="target-error"'),
        ({"events": []}, 'id="events-error"'),
        ({"events": ["no.such_event"]}, 'id="events-error"'),
        ({"time_zone": "Mars/Olympus"}, "IANA time zone"),
        ({"digest_hour": "25"}, 'id="digest_hour-error"'),
        ({"secret": "short"}, 'id="secret-error"'),
        ({"kind": "teams", "oauth_token_url": "https://login.example.com/t"}, "oauth"),
        ({"name": "reviewer:someone"}, 'id="name-error"'),
    ],
)
async def test_a_bad_channel_form_is_refused_with_nothing_stored(
    live_server: LiveServer,
    sessionmaker: async_sessionmaker[AsyncSession],
    changes: dict[str, object],
    expected: str,
) -> None:
    form: dict[str, object] = {
        "name": "bad",
        "kind": "webhook",
        "target": "https://hooks.example.com/path-of-the-target",
        "language": "en",
        "events": ["source.rejected_batch"],
        **changes,
    }
    async with signed_in(live_server.url, sessionmaker) as console:
        await console.page("/console/admin/channels/new")
        refused = await console.post("/console/admin/channels", form)
        assert refused.status_code == 422, refused.text
        assert expected in refused.text
        # The target is not echoed back into the form.
        assert "path-of-the-target" not in refused.text
    assert await count(sessionmaker, Channel) == 0


async def test_send_test_shows_what_the_target_answered(
    live_server: LiveServer,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    receiver: WebhookReceiver,
) -> None:
    async with signed_in(live_server.url, sessionmaker) as console:
        await console.page("/console/admin/channels/new")
        created = await console.post(
            "/console/admin/channels",
            {
                "name": "ops",
                "kind": "webhook",
                "target": receiver.url,
                "language": "en",
                "events": ["source.rejected_batch"],
                "secret": "a-secret-of-enough-length",
            },
        )
        assert created.status_code == 303
        detail = await console.page(created.headers["location"])
        assert ">Send test</button>" in detail.text
        channel_path = created.headers["location"]

        receiver.answer(Reply(202, body=b"thanks, got it"), Reply(500, body=b"boom inside"))
        async with notifier_running(settings):
            accepted = await console.post(f"{channel_path}/test")
            refused = await console.post(f"{channel_path}/test", headers={"HX-Request": "true"})
        assert accepted.status_code == 200, accepted.text
        assert "The target accepted the test message." in accepted.text
        assert "202" in accepted.text
        assert "thanks, got it" in accepted.text
        assert len(receiver.requests) == 2
        # HTMX gets the result alone, for the page to swap in.
        assert refused.status_code == 200
        assert refused.text.lstrip().startswith('<div id="test-result"')
        assert "<html" not in refused.text
        assert "The target refused the test message." in refused.text
        assert "boom inside" in refused.text
    assert await count(sessionmaker, Delivery) == 0


async def test_send_test_without_a_notifier_says_so(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with signed_in(live_server.url, sessionmaker) as console:
        await console.page("/console/admin/channels/new")
        created = await console.post(
            "/console/admin/channels",
            {
                "name": "ops",
                "kind": "email",
                "target": "ops@example.com",
                "language": "en",
                "events": ["report.ready"],
            },
        )
        assert created.status_code == 303, created.text
        path = f"{created.headers['location']}/test"
        page, fragment = await asyncio.gather(
            console.post(path), console.post(path, headers={"HX-Request": "true"})
        )
    assert page.status_code == 503
    assert "The test message was not sent: no notifier sent the test message" in page.text
    # HTMX swaps only a 2xx answer: the fragment says what went wrong itself.
    assert fragment.status_code == 200
    assert "The test message was not sent" in fragment.text
    assert "<html" not in fragment.text


async def test_a_channel_is_deleted(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with signed_in(live_server.url, sessionmaker) as console:
        await console.page("/console/admin/channels/new")
        created = await console.post(
            "/console/admin/channels",
            {
                "name": "gone soon",
                "kind": "email",
                "target": "ops@example.com",
                "language": "en",
                "events": ["report.ready"],
            },
        )
        assert created.status_code == 303, created.text
        detail = await console.page(created.headers["location"])
        assert "data-confirm=" in detail.text
        deleted = await console.post(f"{created.headers['location']}/delete")
        assert deleted.status_code == 303
        assert deleted.headers["location"] == "/console/admin/channels"
        assert (await console.page(created.headers["location"])).status_code == 404
    assert await count(sessionmaker, Channel) == 0


# ------------------------------------------------------------------------ deliveries


async def test_deliveries_are_filtered_shown_with_attempts_and_redriven(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with signed_in(live_server.url, sessionmaker) as console:
        await console.page("/console/admin/channels/new")
        for name in ("first", "second"):
            made = await console.post(
                "/console/admin/channels",
                {
                    "name": name,
                    "kind": "webhook",
                    "target": "http://127.0.0.1:9/x",
                    "language": "en",
                    "events": ["source.secret_rotated"],
                    "secret": "a-secret-of-enough-length",
                },
            )
            assert made.status_code == 303
        async with sessionmaker() as session:
            ids = {c.name: str(c.id) for c in await session.scalars(select(Channel))}
        delivery_ids = await make_deliveries(
            sessionmaker, channel_id=ids["first"], events=3, dead=1
        )
        async with sessionmaker() as session:
            first_ids = set(
                await session.scalars(
                    select(Delivery.id).where(Delivery.channel_id == uuid.UUID(ids["first"]))
                )
            )
            dead_id = next(
                iter(await session.scalars(select(Delivery.id).where(Delivery.status == "dead")))
            )
        assert len(delivery_ids) == 6

        listing = await console.page("/console/admin/deliveries")
        assert listing.text.count("/console/admin/deliveries/") == 6
        dead = await console.page("/console/admin/deliveries", params={"status": "dead"})
        assert dead.text.count('href="/console/admin/deliveries/') == 1
        assert f"/console/admin/deliveries/{dead_id}" in dead.text
        first = await console.page("/console/admin/deliveries", params={"channel_id": ids["first"]})
        shown = {d for d in first_ids if f"/console/admin/deliveries/{d}" in first.text}
        assert shown == first_ids
        assert len(first_ids) == 3
        bad = await console.page("/console/admin/deliveries", params={"status": "lost"})
        assert bad.status_code == 422
        assert 'id="status-error"' in bad.text

        detail = await console.page(f"/console/admin/deliveries/{dead_id}")
        assert ">Redrive</button>" in detail.text
        redriven = await console.post(f"/console/admin/deliveries/{dead_id}/redrive")
        assert redriven.status_code == 303
        async with sessionmaker() as session:
            delivery = await session.get(Delivery, dead_id)
            assert delivery is not None
            assert delivery.status == "pending"
        again = await console.post(f"/console/admin/deliveries/{dead_id}/redrive")
        assert again.status_code == 409
        assert "only a dead-lettered delivery" in again.text
        assert (
            ">Redrive</button>"
            not in (await console.page(f"/console/admin/deliveries/{dead_id}")).text
        )

    # A manager reads deliveries (as in the API) but cannot redrive.
    async with signed_in(live_server.url, sessionmaker, "manager") as manager:
        assert (await manager.page("/console/admin/deliveries")).status_code == 200
        page = await manager.page(f"/console/admin/deliveries/{dead_id}")
        assert page.status_code == 200
        assert "first" not in (await manager.page("/console/admin/deliveries")).text
        assert (
            await manager.post(f"/console/admin/deliveries/{dead_id}/redrive")
        ).status_code == 403


# ------------------------------------------------------------------ roles and CSRF


@pytest.mark.parametrize("role", ["manager", "policy_poc", "qa_auditor", "moderator"])
async def test_other_roles_are_refused_every_admin_page_and_action(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession], role: str
) -> None:
    some_id = uuid.uuid4()
    async with signed_in(live_server.url, sessionmaker, role) as console:
        for path in ADMIN_PAGES:
            if role == "manager" and path == "/console/admin/deliveries":
                continue
            assert (await console.page(path)).status_code == 403, path
        for path in (
            "/console/admin/people",
            f"/console/admin/people/{some_id}",
            f"/console/admin/people/{some_id}/disable",
            f"/console/admin/people/{some_id}/password-link",
            "/console/admin/api-keys",
            f"/console/admin/api-keys/{some_id}/revoke",
            "/console/admin/sources",
            f"/console/admin/sources/{some_id}/rotate",
            "/console/admin/channels",
            f"/console/admin/channels/{some_id}/test",
            f"/console/admin/channels/{some_id}/delete",
            f"/console/admin/deliveries/{some_id}/redrive",
        ):
            refused = await console.post(
                path, {"email": "x@example.com", "role": "admin", "name": "x"}
            )
            assert refused.status_code == 403, path
    assert await count(sessionmaker, User) == 1
    assert await count(sessionmaker, ApiKey) == 0


async def test_admin_forms_without_the_csrf_token_are_refused(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with signed_in(live_server.url, sessionmaker) as console:
        for path, form in (
            ("/console/admin/people", {"email": "x@example.com", "role": "manager"}),
            ("/console/admin/api-keys", {"name": "k", "role": "manager"}),
            ("/console/admin/sources", {"name": "acme"}),
        ):
            missing = await console.http.post(path, data=form)
            assert missing.status_code == 403, path
            wrong = await console.http.post(path, data={**form, "csrf_token": "forged"})
            assert wrong.status_code == 403, path
    assert await count(sessionmaker, User) == 1
    assert await count(sessionmaker, ApiKey) == 0
    assert await count(sessionmaker, Source) == 0


async def test_admin_pages_need_a_sign_in(live_server: LiveServer) -> None:
    async with ConsoleClient(live_server.url) as anonymous:
        for path in ADMIN_PAGES:
            response = await anonymous.http.get(path)
            assert response.status_code == 303
            assert response.headers["location"].startswith("/console/sign-in?next=")


async def test_admin_pages_are_german_for_a_german_admin(
    live_server: LiveServer, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    async with signed_in(live_server.url, sessionmaker, language="de") as console:
        people = await console.page("/console/admin/people")
        assert "Neue Person" in people.text
        channels = await console.page("/console/admin/channels/new")
        assert "Kanal anlegen" in channels.text


# ------------------------------------------------------------------------- browser


async def test_an_admin_creates_a_person_who_sets_a_password_and_signs_in(
    page: Page, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    admin = await make_person(sessionmaker, "admin")
    await page.goto("/console/sign-in")
    await page.get_by_label("Email").fill(admin.email)
    await page.get_by_label("Password").fill(admin.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/console/admin/people")
    await page.get_by_role("link", name="New person").click()
    await page.get_by_label("Email").fill("fresh.auditor@example.com")
    await page.get_by_label("Role").select_option("qa_auditor")
    await page.get_by_label("Reviewer id").fill("aud-fresh")
    await page.get_by_label("Markets").fill("DE")
    await page.get_by_role("button", name="Create person").click()
    await expect(page.get_by_role("heading", name="Person created")).to_be_visible()
    link = await page.get_by_label("One-time link").input_value()
    await expect(page.get_by_role("button", name="Copy")).to_be_visible()

    # The person opens the link in their own browser.
    fresh = await page.context.browser.new_context(  # type: ignore[union-attr]
        base_url=page.url.split("/console/")[0]
    )
    try:
        theirs = await fresh.new_page()
        parts = urlsplit(link)
        await theirs.goto(f"{parts.path}?{parts.query}")
        await theirs.get_by_label("New password", exact=True).fill("a long enough password")
        await theirs.get_by_label("New password again").fill("a long enough password")
        await theirs.get_by_role("button", name="Set password").click()
        await theirs.wait_for_url("**/console/sign-in**")
        await theirs.get_by_label("Email").fill("fresh.auditor@example.com")
        await theirs.get_by_label("Password").fill("a long enough password")
        await theirs.get_by_role("button", name="Sign in").click()
        await theirs.wait_for_url("**/console/workbench")
    finally:
        await fresh.close()


async def test_send_test_in_the_browser_shows_the_answer_in_place(
    page: Page,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    receiver: WebhookReceiver,
) -> None:
    admin = await make_person(sessionmaker, "admin")
    await page.goto("/console/sign-in")
    await page.get_by_label("Email").fill(admin.email)
    await page.get_by_label("Password").fill(admin.password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/console/admin/people")
    await page.goto("/console/admin/channels/new")
    await page.get_by_label("Name").fill("ops")
    await page.get_by_label("Kind").select_option("webhook")
    await page.get_by_label("Target").fill(receiver.url)
    await page.get_by_label("source.rejected_batch").check()
    await page.get_by_role("button", name="Create channel").click()
    # No secret given: the generated one is shown once, then the channel.
    await expect(page.get_by_role("heading", name="Channel created")).to_be_visible()
    await page.get_by_role("link", name="Back to the channel").click()
    receiver.answer(Reply(200, body=b"hello from the receiver"))
    async with notifier_running(settings):
        await page.get_by_role("button", name="Send test").click()
        await expect(page.get_by_role("status")).to_have_text(
            "The target accepted the test message."
        )
    await expect(page.get_by_text("hello from the receiver")).to_be_visible()
    # Swapped in place (HTMX), not a form post that loads .../test as a new page.
    assert not page.url.endswith("/test")
    await expect(page.get_by_role("heading", level=1)).to_have_text("ops")
    assert len(receiver.requests) == 1


@pytest.mark.no_db
def test_every_text_of_the_admin_pages_has_a_german_translation() -> None:
    from babel.messages.pofile import read_po
    from jinja2 import Environment

    from services.audit_api.console.templating import LOCALES_DIR, TEMPLATES_DIR

    translated: set[str] = set()
    for path in (LOCALES_DIR / "de").glob("*.po"):
        with path.open("rb") as po_file:
            translated |= {m.id for m in read_po(po_file) if isinstance(m.id, str) and m.string}
    env = Environment(extensions=["jinja2.ext.i18n"], autoescape=True)
    extract = env.extract_translations  # type: ignore[attr-defined]  # added by the extension
    used = {
        message
        for path in (TEMPLATES_DIR / "admin").glob("*.html")
        for _, _, message in extract(path.read_text())
        if isinstance(message, str)
    }
    assert len(used) > 100
    assert sorted(used - translated) == []
