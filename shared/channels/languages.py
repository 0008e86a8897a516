"""The languages messages are written in: one set, for channels, policy updates and people.

A language is added as template files in the notifier (``services/notifier/templates``) and
here; a notifier test holds the two equal, so no channel can choose a language that has no
templates.
"""

from __future__ import annotations

from typing import Literal

MessageLanguage = Literal["en", "de"]
MESSAGE_LANGUAGES: tuple[MessageLanguage, ...] = ("en", "de")
DEFAULT_MESSAGE_LANGUAGE: MessageLanguage = "en"
