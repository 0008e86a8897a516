"""Console pages: policy updates (write, edit, publish, acknowledge, who has acknowledged)
and policy questions (ask, answer, promote an answer into a draft update).

The same domain functions and role sets as ``/v1/policy-updates`` and
``/v1/policy-questions``: ``shared.policy_updates`` (``AUTHORS`` write and publish,
``OVERSEERS`` see drafts and acknowledgements, every role reads the published updates of its
markets, a reviewer acknowledges with their own identity) and ``shared.policy_questions``
(``ASKERS`` ask, ``ANSWERERS`` answer and promote, ``OVERSEERS`` see their markets'
questions, the others their own).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from services.audit_api.console.forms import (
    FieldErrors,
    FormRefused,
    parse,
    problems_of,
    refusable,
)
from services.audit_api.console.session import ConsoleContext, console_page
from services.audit_api.console.templating import render
from services.audit_api.deps import SessionDep, SettingsDep
from shared.channels.languages import MESSAGE_LANGUAGES
from shared.core.auth import ALL_ROLES, Principal
from shared.core.errors import Conflict, NotFound, UnprocessableEntity
from shared.models.base import utcnow
from shared.policy_questions import service as questions
from shared.policy_questions.promotion import promote_answer
from shared.policy_updates import queries, service
from shared.schemas.common import DEFAULT_PAGE_SIZE
from shared.schemas.policy_questions import (
    MAX_ANSWER_LENGTH,
    MAX_QUESTION_LENGTH,
    PolicyQuestionAnswer,
    PolicyQuestionAsk,
    PolicyQuestionQuery,
    PolicyQuestionRead,
)
from shared.schemas.policy_updates import (
    AcknowledgementsRead,
    PolicyUpdateCreate,
    PolicyUpdatePatch,
    PolicyUpdateQuery,
    PolicyUpdateRead,
)
from shared.users import service as users

router = APIRouter()

Anyone = Annotated[ConsoleContext, Depends(console_page(*ALL_ROLES))]
Author = Annotated[ConsoleContext, Depends(console_page(*queries.AUTHORS))]
Asker = Annotated[ConsoleContext, Depends(console_page(*questions.ASKERS))]
Answerer = Annotated[ConsoleContext, Depends(console_page(*questions.ANSWERERS))]
Cursor = Annotated[str | None, Query(max_length=2048)]

TEXT_FIELDS = ("title", "summary", "body")
# Form fields are bounded before validation: beyond these a request is refused outright.
MAX_TITLE, MAX_SUMMARY, MAX_BODY = 300, 2000, 100_000
MAX_LIST_FIELD = 10_000

UpdateNotice = Literal["saved", "published", "acknowledged", "promoted"]
QuestionNotice = Literal["asked", "answered"]


async def display_names(session: SessionDep, values: Iterable[str | None]) -> dict[str, str]:
    """How the console shows who did something: a console person recorded by their sign-in
    (``user:<id>``, or ``api-key:user:<id>`` where a domain names the key) as their e-mail
    address; anyone else (a reviewer id, an API key's name) as recorded."""
    names: dict[str, str] = {}
    for value in {v for v in values if v}:
        raw = value.removeprefix("api-key:")
        if not raw.startswith("user:"):
            continue
        try:
            user = await users.get_user(session, user_id=uuid.UUID(raw.removeprefix("user:")))
        except (ValueError, NotFound):
            continue
        names[value] = user.email
    return names


# --- policy updates: the form ---------------------------------------------------------------


@dataclass
class UpdateForm:
    """The policy-update form as typed: each language's title, summary and body, the policy
    codes and markets (separated by commas or spaces), the effective date (UTC)."""

    texts: dict[str, dict[str, str]] = field(
        default_factory=lambda: {lang: dict.fromkeys(TEXT_FIELDS, "") for lang in MESSAGE_LANGUAGES}
    )
    policy_codes: str = ""
    markets: str = ""
    effective_at: str = ""

    @classmethod
    def of(cls, update: PolicyUpdateRead) -> UpdateForm:
        form = cls(
            policy_codes=", ".join(update.policy_codes),
            markets=", ".join(update.markets),
            effective_at=update.effective_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M"),
        )
        form.texts[update.language] = {
            "title": update.title,
            "summary": update.summary,
            "body": update.body,
        }
        for language, text in update.translations.items():
            if language in form.texts:
                form.texts[language] = text.model_dump()
        return form


def _split(value: str) -> list[str]:
    return [part for part in value.replace(",", " ").split() if part]


def _instant(value: str) -> datetime | None:
    """A ``datetime-local`` value (or ISO 8601), read as UTC when it names no zone."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _field_of(loc: tuple[str, ...], original: str) -> str:
    """The form field a validation error's location points at."""
    head = loc[0] if loc else ""
    if head in TEXT_FIELDS:
        return f"{head}_{original}"
    if head == "translations" and len(loc) >= 3:
        return f"{loc[2]}_{loc[1]}"
    if head in ("policy_codes", "markets", "effective_at"):
        return head
    return ""


def parse_update_form(form: UpdateForm, author: Principal) -> PolicyUpdateCreate:
    """The form as a ``PolicyUpdateCreate`` (the API's own validation); ``FormRefused`` with
    the errors by field otherwise. The original language is the first one written
    (English, then German); a language is written in full (title, summary and body) or
    left empty. A market outside the author's is marked on the form (the domain function
    refuses it too, with a 403)."""
    errors: FieldErrors = {}
    written = [
        lang for lang in MESSAGE_LANGUAGES if any(form.texts[lang][name] for name in TEXT_FIELDS)
    ]
    for lang in written:
        for name in TEXT_FIELDS:
            if not form.texts[lang][name]:
                errors[f"{name}_{lang}"] = ["missing"]
    if not written:
        errors["title_en"] = ["missing"]
        errors[""] = ["no-language"]
    effective_at = _instant(form.effective_at)
    if effective_at is None:
        errors["effective_at"] = ["invalid"]
    original = written[0] if written else MESSAGE_LANGUAGES[0]
    data: dict[str, Any] = {
        **form.texts[original],
        "language": original,
        "translations": {lang: form.texts[lang] for lang in written[1:]},
        "policy_codes": _split(form.policy_codes),
        "markets": [market.upper() for market in _split(form.markets)],
        "effective_at": effective_at,
    }
    try:
        created = PolicyUpdateCreate.model_validate(data)
    except ValidationError as exc:
        for problem in problems_of(exc):
            errors.setdefault(_field_of(problem.loc, original), []).append(problem.message)
        raise FormRefused(errors) from None
    if any(not author.can_see_market(market) for market in created.markets):
        errors["markets"] = ["foreign"]
    if errors:
        raise FormRefused(errors)
    return created


def as_patch(created: PolicyUpdateCreate) -> PolicyUpdatePatch:
    """The whole form as changes to a draft (its quiz left as it is)."""
    return PolicyUpdatePatch.model_validate(
        created.model_dump(include=set(PolicyUpdatePatch.model_fields) - {"quiz_id"})
    )


async def _read_form(request: Request) -> UpdateForm:
    """The posted update form (each field bounded: a longer one is refused with a 422)."""
    posted = await request.form()
    limits = {"title": MAX_TITLE, "summary": MAX_SUMMARY, "body": MAX_BODY}

    def value(name: str, limit: int) -> str:
        raw = posted.get(name)
        text = raw.strip() if isinstance(raw, str) else ""
        return text[: limit + 1]  # one past the limit: the schema says it is too long

    form = UpdateForm(
        policy_codes=value("policy_codes", MAX_LIST_FIELD),
        markets=value("markets", MAX_LIST_FIELD),
        effective_at=value("effective_at", 64),
    )
    for lang in MESSAGE_LANGUAGES:
        for name in TEXT_FIELDS:
            form.texts[lang][name] = value(f"{name}_{lang}", limits[name])
    return form


def _form_page(
    request: Request,
    context: ConsoleContext,
    form: UpdateForm,
    *,
    update: PolicyUpdateRead | None = None,
    errors: FieldErrors | None = None,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "policy/update_form.html",
        context=context,
        status_code=status_code,
        form=form,
        update=update,
        errors=errors or {},
        languages=MESSAGE_LANGUAGES,
        limits={"title": MAX_TITLE, "summary": MAX_SUMMARY, "body": MAX_BODY},
    )


def _is_author(context: ConsoleContext) -> bool:
    return context.role in queries.AUTHORS


def _is_overseer(context: ConsoleContext) -> bool:
    return context.role in queries.OVERSEERS


# --- policy updates: pages --------------------------------------------------------------------


@router.get("/policy-updates")
async def update_list(
    request: Request,
    context: Anyone,
    session: SessionDep,
    status: Annotated[Literal["draft", "published", ""] | None, Query()] = None,
    cursor: Cursor = None,
    notice: Annotated[UpdateNotice | None, Query()] = None,
) -> Response:
    """The updates the person may see, newest first (drafts too for overseers), with a
    reviewer's own acknowledgement and its button."""
    status = status or None
    page = await queries.list_updates(
        session,
        filters=PolicyUpdateQuery(status=status, limit=DEFAULT_PAGE_SIZE, cursor=cursor),
        viewer=context.principal,
    )
    reviewer_id = context.principal.reviewer_id
    acknowledged = (
        await queries.acknowledged_by(
            session, reviewer_id=reviewer_id, update_ids=[u.id for u in page.items]
        )
        if reviewer_id is not None
        else {}
    )
    return render(
        request,
        "policy/updates.html",
        context=context,
        updates=page.items,
        next_cursor=page.next_cursor,
        status=status,
        acknowledged=acknowledged,
        can_write=_is_author(context),
        can_acknowledge=reviewer_id is not None,
        notice=notice,
    )


@router.get("/policy-updates/new")
async def new_update(request: Request, context: Author) -> Response:
    """The form of a new draft (markets prefilled with the person's own)."""
    form = UpdateForm(markets=", ".join(context.principal.markets or ()))
    return _form_page(request, context, form)


@router.post("/policy-updates/new")
async def create_update(request: Request, context: Author, session: SessionDep) -> Response:
    """Store the draft (``create_update``); the form again with its errors (422) otherwise."""
    form = await _read_form(request)
    try:
        created = parse_update_form(form, context.principal)
    except FormRefused as refused:
        return _form_page(request, context, form, errors=refused.errors, status_code=refused.status)
    update = await service.create_update(session, data=created, actor=context.principal)
    return RedirectResponse(f"/console/policy-updates/{update.id}?notice=saved", status_code=303)


@router.get("/policy-updates/{update_id}")
async def update_detail(
    request: Request,
    update_id: uuid.UUID,
    context: Anyone,
    session: SessionDep,
    notice: Annotated[UpdateNotice | None, Query()] = None,
) -> Response:
    """An update in each of its languages; for overseers who has acknowledged it and who
    not, for authors of a draft "Edit" and "Publish", for a reviewer the acknowledgement."""
    update = await service.get_update_for(session, update_id=update_id, viewer=context.principal)
    acks: AcknowledgementsRead | None = None
    if _is_overseer(context) and update.status == "published":
        acks = await queries.acknowledgements(
            session, update_id=update.id, viewer=context.principal
        )
    reviewer_id = context.principal.reviewer_id
    mine = (
        (await queries.acknowledged_by(session, reviewer_id=reviewer_id, update_ids=[update.id]))
        if reviewer_id is not None
        else {}
    )
    names = await display_names(session, [update.created_by, update.published_by])
    texts = {update.language: update.model_dump(include={"title", "summary", "body"})}
    texts.update({lang: text.model_dump() for lang, text in update.translations.items()})
    return render(
        request,
        "policy/update.html",
        context=context,
        update=update,
        texts=texts,
        names=names,
        acks=acks,
        acknowledged_at=mine.get(update.id),
        can_edit=_is_author(context) and update.status == "draft",
        can_acknowledge=reviewer_id is not None and update.status == "published",
        notice=notice,
    )


@router.get("/policy-updates/{update_id}/edit")
async def edit_update(
    request: Request, update_id: uuid.UUID, context: Author, session: SessionDep
) -> Response:
    """The form of a draft, filled in (409 for a published update: it is final)."""
    update = await service.get_update_for(session, update_id=update_id, viewer=context.principal)
    if update.status != "draft":
        raise Conflict("the policy update is published already; a published update is final")
    return _form_page(request, context, UpdateForm.of(update), update=update)


@router.post("/policy-updates/{update_id}/edit")
async def save_update(
    request: Request, update_id: uuid.UUID, context: Author, session: SessionDep
) -> Response:
    """Save the draft's changes (``change_update``: the whole form replaces the draft)."""
    update = await service.get_update_for(session, update_id=update_id, viewer=context.principal)
    form = await _read_form(request)
    try:
        created = parse_update_form(form, context.principal)
    except FormRefused as refused:
        return _form_page(
            request, context, form, update=update, errors=refused.errors, status_code=refused.status
        )
    await service.change_update(
        session, update_id=update_id, data=as_patch(created), actor=context.principal
    )
    return RedirectResponse(f"/console/policy-updates/{update_id}?notice=saved", status_code=303)


@router.post("/policy-updates/{update_id}/publish")
async def publish(update_id: uuid.UUID, context: Author, session: SessionDep) -> Response:
    """Publish the draft (``publish_update``: versions, quiz, channels), once."""
    await service.publish_update(session, update_id=update_id, actor=context.principal)
    return RedirectResponse(
        f"/console/policy-updates/{update_id}?notice=published", status_code=303
    )


@router.post("/policy-updates/{update_id}/acknowledge")
async def acknowledge(
    update_id: uuid.UUID,
    context: Anyone,
    session: SessionDep,
    back: Annotated[Literal["list", "update"], Form()] = "update",
) -> Response:
    """The signed-in reviewer has read the update (``acknowledge_with_key``: their own
    identity; 403 for a person bound to no reviewer or not of the update's markets)."""
    await service.acknowledge_with_key(
        session, update_id=update_id, actor=context.principal, now=utcnow()
    )
    target = (
        "/console/policy-updates?notice=acknowledged"
        if back == "list"
        else f"/console/policy-updates/{update_id}?notice=acknowledged"
    )
    return RedirectResponse(target, status_code=303)


# --- policy questions ----------------------------------------------------------------------


def _ask_values(form: dict[str, str] | None) -> dict[str, str]:
    return {"policy_code": "", "market": "", "question": "", **(form or {})}


async def _questions_page(
    request: Request,
    context: ConsoleContext,
    session: SessionDep,
    settings: SettingsDep,
    *,
    status: Literal["open", "answered", "all"] | None,
    cursor: str | None,
    notice: str | None = None,
    ask: dict[str, str] | None = None,
    errors: FieldErrors | None = None,
    status_code: int = 200,
) -> Response:
    overseer = context.role in questions.OVERSEERS
    shown = status or ("open" if context.role in questions.ANSWERERS else "all")
    page = await questions.list_questions(
        session,
        filters=PolicyQuestionQuery(
            status=None if shown == "all" else shown, limit=DEFAULT_PAGE_SIZE, cursor=cursor
        ),
        viewer=context.principal,
    )
    sla = settings.policy_question_sla_hours
    names = await display_names(session, [q.asked_by for q in page.items])
    return render(
        request,
        "policy/questions.html",
        context=context,
        status_code=status_code,
        questions=[questions.question_read(q, sla_hours=sla) for q in page.items],
        names=names,
        next_cursor=page.next_cursor,
        shown=shown,
        overseer=overseer,
        now=utcnow(),
        markets=context.principal.markets,
        ask=_ask_values(ask),
        errors=errors or {},
        notice=notice,
        max_question=MAX_QUESTION_LENGTH,
    )


@router.get("/policy-questions")
async def question_list(
    request: Request,
    context: Asker,
    session: SessionDep,
    settings: SettingsDep,
    status: Annotated[Literal["open", "answered", "all"] | None, Query()] = None,
    cursor: Cursor = None,
    notice: Annotated[QuestionNotice | None, Query()] = None,
) -> Response:
    """The questions the person may see (POCs: their markets', open ones first shown;
    everyone else: their own with the answers), and the form to ask one."""
    return await _questions_page(
        request, context, session, settings, status=status, cursor=cursor, notice=notice
    )


@router.post("/policy-questions")
async def ask_question(
    request: Request,
    context: Asker,
    session: SessionDep,
    settings: SettingsDep,
    policy_code: Annotated[str, Form(max_length=200)] = "",
    market: Annotated[str, Form(max_length=16)] = "",
    question: Annotated[str, Form(max_length=MAX_QUESTION_LENGTH * 2)] = "",
) -> Response:
    """Ask (``ask_question``: the market's POCs hear of it); the form again with its
    errors (422) when a field is wrong, nothing stored."""
    values = {"policy_code": policy_code.strip(), "market": market.strip(), "question": question}
    try:
        asked = parse(PolicyQuestionAsk, values)
    except FormRefused as refused:
        return await _questions_page(
            request,
            context,
            session,
            settings,
            status=None,
            cursor=None,
            ask=values,
            errors=refused.errors,
            status_code=422,
        )
    row = await questions.ask_question(
        session,
        policy_code=asked.policy_code,
        market=asked.market,
        question=asked.question,
        actor=context.principal,
        now=utcnow(),
        sla_hours=settings.policy_question_sla_hours,
    )
    return RedirectResponse(f"/console/policy-questions/{row.id}?notice=asked", status_code=303)


async def _question_page(
    request: Request,
    context: ConsoleContext,
    session: SessionDep,
    settings: SettingsDep,
    question_id: uuid.UUID,
    *,
    notice: str | None = None,
    answer: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    row = await questions.get_question(session, question_id=question_id, viewer=context.principal)
    read: PolicyQuestionRead = questions.question_read(
        row, sla_hours=settings.policy_question_sla_hours
    )
    answerer = context.role in questions.ANSWERERS
    names = await display_names(session, [read.asked_by, read.answered_by])
    drafts: list[PolicyUpdateRead] = []
    if answerer and read.status == "answered" and read.promoted_to_update_id is None:
        drafts = (
            await queries.list_updates(
                session,
                filters=PolicyUpdateQuery(status="draft", market=read.market, limit=50),
                viewer=context.principal,
            )
        ).items
    return render(
        request,
        "policy/question.html",
        context=context,
        status_code=status_code,
        question=read,
        names=names,
        now=utcnow(),
        can_answer=answerer and read.status == "open",
        can_promote=answerer and read.status == "answered" and read.promoted_to_update_id is None,
        drafts=drafts,
        answer=answer,
        error=error,
        notice=notice,
        max_answer=MAX_ANSWER_LENGTH,
    )


@router.get("/policy-questions/{question_id}")
async def question_detail(
    request: Request,
    question_id: uuid.UUID,
    context: Asker,
    session: SessionDep,
    settings: SettingsDep,
    notice: Annotated[QuestionNotice | None, Query()] = None,
) -> Response:
    """A question and its answer; the answer form for a POC while it is open, and the
    promotion into a draft update once answered."""
    return await _question_page(request, context, session, settings, question_id, notice=notice)


@router.post("/policy-questions/{question_id}/answer")
async def answer_question(
    request: Request,
    question_id: uuid.UUID,
    context: Answerer,
    session: SessionDep,
    settings: SettingsDep,
    answer: Annotated[str, Form(max_length=MAX_ANSWER_LENGTH * 2)] = "",
) -> Response:
    """Answer once (``answer_question``); an empty answer is a 422 and a second answer a
    409, each shown on the question's page, nothing stored."""
    try:
        given = parse(PolicyQuestionAnswer, {"answer": answer})
    except FormRefused:
        return await _question_page(
            request,
            context,
            session,
            settings,
            question_id,
            answer=answer,
            error="invalid",
            status_code=422,
        )
    try:
        async with refusable(session, show=(Conflict,)):
            await questions.answer_question(
                session,
                question_id=question_id,
                answer=given.answer,
                actor=context.principal,
                now=utcnow(),
                sla_hours=settings.policy_question_sla_hours,
            )
    except FormRefused:
        # Refused before anything was written: the answer already given is shown instead.
        return await _question_page(
            request,
            context,
            session,
            settings,
            question_id,
            error="answered-already",
            status_code=409,
        )
    return RedirectResponse(
        f"/console/policy-questions/{question_id}?notice=answered", status_code=303
    )


@router.post("/policy-questions/{question_id}/promote")
async def promote(
    question_id: uuid.UUID,
    context: Answerer,
    session: SessionDep,
    settings: SettingsDep,
    policy_update_id: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Add the question and its answer to a draft update's body (``promote_answer``: the
    draft chosen, else the latest draft of the market for the code, else a new one), then
    open that draft."""
    chosen: uuid.UUID | None = None
    if policy_update_id.strip():
        try:
            chosen = uuid.UUID(policy_update_id.strip())
        except ValueError:
            raise UnprocessableEntity("choose a draft policy update from the list") from None
    promoted = await promote_answer(
        session,
        question_id=question_id,
        policy_update_id=chosen,
        actor=context.principal,
        now=utcnow(),
        sla_hours=settings.policy_question_sla_hours,
    )
    return RedirectResponse(
        f"/console/policy-updates/{promoted.promoted_to_update_id}?notice=promoted",
        status_code=303,
    )


__all__ = ["parse_update_form", "router"]
