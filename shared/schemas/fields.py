"""Field types with their validation, shared by every schema."""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, StringConstraints


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


MarketCode = Annotated[str, BeforeValidator(_upper), StringConstraints(pattern=r"^[A-Z]{2}$")]
PolicyCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,64}$")]
QueueName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
ReviewerId = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
LanguageTag = Annotated[
    str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=16)
]
SourceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]
