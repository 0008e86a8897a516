"""Field types with their validation, shared by every schema."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

# Lower case is accepted and stored upper case; all in pydantic-core (no Python call per value,
# which matters at 50,000 decisions a second).
MarketCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$", to_upper=True)]
PolicyCode = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,64}$")]
QueueName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
ReviewerId = Annotated[str, StringConstraints(min_length=1, max_length=128, strip_whitespace=True)]
LanguageTag = Annotated[
    str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=16)
]
TeamName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
SourceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,128}$")]
