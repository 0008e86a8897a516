"""Policy updates, their acknowledgements and the policy version history: requests, responses."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.channels.languages import DEFAULT_MESSAGE_LANGUAGE, MessageLanguage
from shared.schemas.common import PageQuery
from shared.schemas.fields import Instant, MarketCode, PolicyCode

PolicyUpdateStatus = Literal["draft", "published"]

Title = Annotated[str, StringConstraints(min_length=1, max_length=300)]
Summary = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
Body = Annotated[str, StringConstraints(min_length=1, max_length=100_000)]
PolicyCodes = Annotated[list[PolicyCode], Field(min_length=1, max_length=100)]
Markets = Annotated[list[MarketCode], Field(min_length=1, max_length=300)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyUpdateTextIn(_Strict):
    """The update's text in one language."""

    title: Title
    summary: Summary
    body: Body


class PolicyUpdateTextOut(BaseModel):
    title: str
    summary: str
    body: str


def _check_translations(
    language: str | None, translations: dict[MessageLanguage, PolicyUpdateTextIn] | None
) -> None:
    if language is not None and translations and language in translations:
        raise ValueError(
            f"translations must not repeat the original's language '{language}': its text "
            "is title, summary and body"
        )


class PolicyUpdateCreate(_Strict):
    """A draft policy update. ``title``, ``summary`` and ``body`` are written in ``language``
    (the original); ``translations`` adds the text in other languages messages are written in
    (``shared.channels.languages``); a channel in a language without a text gets the
    original inside a frame in its own language."""

    title: Title
    summary: Summary
    body: Body
    policy_codes: PolicyCodes
    markets: Markets
    effective_at: Instant
    language: MessageLanguage = DEFAULT_MESSAGE_LANGUAGE
    translations: dict[MessageLanguage, PolicyUpdateTextIn] = Field(default_factory=dict)
    quiz_id: uuid.UUID | None = Field(
        None, description="A knowledge quiz assigned to the update's markets when it is published."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _check_translations(self.language, self.translations)
        return self


class PolicyUpdatePatch(_Strict):
    """Changes to a draft: the fields given replace the stored ones (``translations`` as a
    whole); ``quiz_id`` null detaches the quiz. Other fields may not be null."""

    title: Title | None = None
    summary: Summary | None = None
    body: Body | None = None
    policy_codes: PolicyCodes | None = None
    markets: Markets | None = None
    effective_at: Instant | None = None
    language: MessageLanguage | None = None
    translations: dict[MessageLanguage, PolicyUpdateTextIn] | None = None
    quiz_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        given = self.model_fields_set
        if not given:
            raise ValueError("nothing to change: give at least one field")
        nulls = sorted(name for name in given - {"quiz_id"} if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"may not be null: {', '.join(nulls)}")
        _check_translations(self.language, self.translations)
        return self


class PolicyUpdateRead(BaseModel):
    """A policy update. ``versions`` holds each policy code's new version once published."""

    id: uuid.UUID
    status: PolicyUpdateStatus
    language: str
    title: str
    summary: str
    body: str
    translations: dict[str, PolicyUpdateTextOut]
    policy_codes: list[str]
    markets: list[str]
    effective_at: datetime
    quiz_id: uuid.UUID | None
    versions: dict[str, int]
    created_by: str | None
    created_at: datetime
    published_at: datetime | None
    published_by: str | None
    reminder_sent_at: datetime | None


class PolicyUpdateQuery(PageQuery):
    status: PolicyUpdateStatus | None = None
    market: MarketCode | None = None
    policy_code: PolicyCode | None = None


class AcknowledgementRead(BaseModel):
    """A reviewer's acknowledgement of an update: the first one counts (``via``: ``api`` with
    the reviewer's key, ``link`` through the signed link of a message)."""

    policy_update_id: uuid.UUID
    reviewer_id: str
    acknowledged_at: datetime
    via: Literal["api", "link"]


class AcknowledgedBy(BaseModel):
    reviewer_id: str
    at: datetime


class AcknowledgementsRead(BaseModel):
    """Who of the update's markets' reviewers has acknowledged it, and who has not."""

    acknowledged: list[AcknowledgedBy]
    pending: list[str]


class PolicyVersionRead(BaseModel):
    policy_code: str
    version: int
    effective_at: datetime
    policy_update_id: uuid.UUID | None
    created_at: datetime

    model_config = ConfigDict(from_attributes=True)


class PolicyVersionsRead(BaseModel):
    """A policy code's version history, oldest first; ``version`` is the latest published."""

    policy_code: str
    version: int
    versions: list[PolicyVersionRead]


def texts_of(
    *, language: str, original: PolicyUpdateTextIn, translations: dict[Any, PolicyUpdateTextIn]
) -> dict[str, dict[str, str]]:
    """The stored ``texts`` column: the original and each translation, by language."""
    texts = {str(lang): text.model_dump() for lang, text in translations.items()}
    texts[language] = original.model_dump()
    return texts
