"""Message templates: every event type, in every language, laid out by every channel kind.

Each event type renders a realistic payload (validated through its model in
``shared.events``) in English and German, in a channel time zone that is not UTC, and every
kind's body is checked against its target's limits and shape. Numbers, percentages,
p-values and moments are Babel's (CLDR's) forms in each language.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from typing import Any

import httpx
import orjson
import pytest

from services.notifier.channels import SUPPORTED_KINDS, render_message
from services.notifier.channels.base import OutgoingMessage
from services.notifier.channels.email import EmailAdapter
from services.notifier.templates.email import read_email
from services.notifier.templates.messages import phrases, template_languages, template_types
from services.notifier.templates.parts import (
    CHANNEL_TEST_EVENT,
    LINK_PATHS,
    MAX_DIGEST_LINES,
    MessageLink,
    message_parts,
)
from services.notifier.templates.webhook import render_webhook_body
from shared.analytics.formatting import (
    format_datetime,
    format_p_value,
    language_name,
    time_zone_of,
)
from shared.channels.credentials import ChannelCredentials
from shared.channels.languages import MESSAGE_LANGUAGES
from shared.core.settings import Settings
from shared.events import DIGEST_EVENT_TYPE, EVENT_PAYLOADS, EventType
from shared.models import Event

pytestmark = pytest.mark.no_db

PUBLIC_URL = "https://plumbline.example.com"
TIME_ZONE = "Europe/Berlin"
# Every moment of the samples: 10:00 UTC is 11:00 in Berlin (CET, winter).
MOMENT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
NBSP = "\u00a0"
NNBSP = "\u202f"  # CLDR's narrow no-break space before AM/PM
KINDS = ("slack", "teams", "lark", "email", "webhook")
LANGUAGES = ("en", "de")

ID = uuid.UUID("6c1f0c4e-2a7b-4f43-9d1e-5b2f8f1f0a11")
PLAN_ID = uuid.UUID("0b5e7c3a-1111-4a2b-8c3d-000000000002")
ACCURACY = 0.9123
LOCAL = {
    "en": f"Nov 27, 2026, 11:00{NNBSP}AM GMT+01:00",
    "de": "27.11.2026, 11:00 MEZ",
}
PERCENT = {"en": "91.2%", "de": f"91,2{NBSP}%"}


def update_texts(*languages: str) -> dict[str, dict[str, str]]:
    texts = {
        "en": {
            "title": "Hate speech in usernames",
            "summary": "Slurs in usernames are removed from now on, not only restricted.",
            "body": "Usernames containing slurs are removed.\n\nAppeals follow the usual path.",
        },
        "de": {
            "title": "Hassrede in Nutzernamen",
            "summary": "Beleidigungen in Nutzernamen werden ab jetzt entfernt, nicht nur "
            "eingeschränkt.",
            "body": "Nutzernamen mit Beleidigungen werden entfernt.\n\nEinsprüche wie üblich.",
        },
    }
    return {language: texts[language] for language in languages}


SAMPLES: dict[str, dict[str, Any]] = {
    EventType.SOURCE_REJECTED_BATCH: {
        "id": ID,
        "source": "acme-moderation",
        "status": 422,
        "reason": "event 3 is invalid",
        "errors": [{"loc": ["events", 3], "msg": "field required"}],
        "event_count": 12_345,
    },
    EventType.SOURCE_SECRET_ROTATED: {
        "id": ID,
        "source": "acme-moderation",
        "previous_secret_expires_at": MOMENT,
    },
    EventType.POLICY_UPDATE_PUBLISHED: {
        "id": ID,
        "language": "en",
        "texts": update_texts("en", "de"),
        "policy_codes": ["HATE", "USERNAME"],
        "versions": {"HATE": 3, "USERNAME": 1},
        "markets": ["DE", "AT"],
        "effective_at": MOMENT,
        "published_by": "poc-anna",
        "quiz_id": uuid.uuid4(),
    },
    EventType.POLICY_UPDATE_REMINDER: {
        "id": ID,
        "language": "en",
        "texts": update_texts("en", "de"),
        "policy_codes": ["HATE"],
        "markets": ["DE"],
        "effective_at": MOMENT,
        "pending": 1_234,
        "acknowledged": 56,
    },
    EventType.POLICY_QUESTION_ASKED: {
        "id": ID,
        "policy_code": "HATE",
        "market": "DE",
        "question": "Does a slur inside a longer username count as hate speech?",
        "asked_by": "rev-17",
        "answer_due_at": MOMENT,
    },
    EventType.POLICY_QUESTION_ANSWERED: {
        "id": ID,
        "policy_code": "HATE",
        "market": "DE",
        "question": "Does a slur inside a longer username count as hate speech?",
        "answer": "Yes: remove it, whatever else the username holds.",
        "asked_by": "rev-17",
        "answered_by": "poc-anna",
        "answered_at": MOMENT,
    },
    EventType.POLICY_QUESTION_OVERDUE: {
        "id": ID,
        "policy_code": "HATE",
        "market": "DE",
        "question": "Does a slur inside a longer username count as hate speech?",
        "asked_by": "rev-17",
        "asked_at": MOMENT,
        "sla_hours": 48,
    },
    EventType.ESCALATION_OPENED: {
        "id": ID,
        "title": "DE video accuracy below 95%",
        "slice": {"market": "DE", "queue": "de-video-standard"},
        "metric": "accuracy",
        "value": ACCURACY,
        "threshold": 0.95,
        "baseline": 0.962,
        "p_value": 0.0004,
        "audits": 12_345,
        "rule_id": uuid.uuid4(),
        "opened_at": MOMENT,
    },
    EventType.ESCALATION_ACTION_OVERDUE: {
        "id": ID,
        "title": "DE video accuracy below 95%",
        "action_id": uuid.uuid4(),
        "action": "Refresher session on the new username rules",
        "owner": "lead-maria",
        "due_at": MOMENT,
    },
    EventType.DISAGREEMENT_OPENED: {
        "id": ID,
        "audit_id": uuid.uuid4(),
        "decision_id": 17,
        "moderator_id": "mod-42",
        "market": "DE",
        "queue": "de-video-standard",
        "error_type": "missed_violation",
        "severity": "critical",
        "expected_action": "remove",
        "dispute_deadline": MOMENT,
    },
    EventType.DISPUTE_AWAITING_ARBITRATION: {
        "id": ID,
        "audit_id": uuid.uuid4(),
        "decision_id": 17,
        "moderator_id": "mod-42",
        "auditor_id": "aud-1",
        "market": "DE",
        "queue": "de-video-standard",
        "dispute_reason": "The clip is satire",
        "disputed_at": MOMENT,
        "waiting_hours": 30,
        "sla_hours": 24,
    },
    EventType.DECISION_CORRECTED: {
        "decision_id": 17,
        "event_id": "evt-17",
        "content_id": "vid-17",
        "original_action": "approve",
        "corrected_action": "remove",
        "corrected_labels": ["hate_speech"],
        "severity": "major",
        "error_type": "missed_violation",
        "verdict_id": uuid.uuid4(),
        "corrected_at": MOMENT,
    },
    EventType.CALIBRATION_OPENED: {
        "id": ID,
        "title": "Usernames, November",
        "market": "DE",
        "participants": ["rev-1", "rev-2", "rev-3"],
        "deadline": MOMENT,
    },
    EventType.CALIBRATION_CLOSED: {
        "id": ID,
        "title": "Usernames, November",
        "market": "DE",
        "krippendorff_alpha": 0.71,
        "percent_agreement": ACCURACY,
        "flagged_items": 4,
        "n_items": 1_200,
        "participants": 3,
    },
    EventType.QUIZ_ASSIGNED: {
        "id": ID,
        "title": "Usernames quiz",
        "policy_code": "HATE",
        "policy_update_id": uuid.uuid4(),
        "markets": ["DE", "AT"],
        "assignees": 1_500,
        "due_at": MOMENT,
    },
    EventType.REPORT_READY: {
        "id": ID,
        "schedule_id": uuid.uuid4(),
        "title": "Weekly accuracy",
        "report": "accuracy",
        "period_from": "2026-11-16",
        "period_to": "2026-11-22",
        "formats": ["xlsx", "pdf"],
        "attachments": [
            {"filename": "accuracy.csv", "content_type": "text/csv", "content_base64": "YSxi"}
        ],
    },
    EventType.TRAINING_ITEM_OVERDUE: {
        "plan_id": PLAN_ID,
        "plan_title": "Onboarding DE",
        "plan_kind": "onboarding",
        "item_id": "item-3",
        "item_kind": "read_policy",
        "reviewer_id": "rev-17",
        "owners": ["lead-maria"],
        "policy_code": "HATE",
        "quiz_id": None,
        "due_at": MOMENT,
    },
    EventType.AUDITOR_ACCURACY_DROPPED: {
        "auditor_id": "aud-1",
        "week": "2026-W47",
        "judged": 1_200,
        "matched": 1_095,
        "accuracy": ACCURACY,
        "threshold": 0.95,
    },
}

EXPECTED_PATHS = {
    EventType.SOURCE_REJECTED_BATCH: "/v1/sources",
    EventType.SOURCE_SECRET_ROTATED: "/v1/sources",
    EventType.POLICY_UPDATE_PUBLISHED: f"/v1/policy-updates/{ID}",
    EventType.POLICY_UPDATE_REMINDER: f"/v1/policy-updates/{ID}",
    EventType.POLICY_QUESTION_ASKED: f"/v1/policy-questions/{ID}",
    EventType.POLICY_QUESTION_ANSWERED: f"/v1/policy-questions/{ID}",
    EventType.POLICY_QUESTION_OVERDUE: f"/v1/policy-questions/{ID}",
    EventType.ESCALATION_OPENED: f"/v1/escalations/{ID}",
    EventType.ESCALATION_ACTION_OVERDUE: f"/v1/escalations/{ID}",
    EventType.DISAGREEMENT_OPENED: f"/v1/disagreements/{ID}",
    EventType.DISPUTE_AWAITING_ARBITRATION: f"/v1/disagreements/{ID}",
    EventType.DECISION_CORRECTED: "/v1/decisions/17",
    EventType.CALIBRATION_OPENED: f"/v1/calibrations/{ID}",
    EventType.CALIBRATION_CLOSED: f"/v1/calibrations/{ID}",
    EventType.QUIZ_ASSIGNED: f"/v1/quizzes/{ID}",
    EventType.REPORT_READY: f"/v1/report-snapshots/{ID}",
    EventType.TRAINING_ITEM_OVERDUE: f"/v1/training-plans/{PLAN_ID}",
    EventType.AUDITOR_ACCURACY_DROPPED: "/v1/auditor-quality?auditor_id=aud-1",
    CHANNEL_TEST_EVENT: f"/v1/channels/{ID}",
}

# A word each German message has (and its English one has not).
GERMAN_WORDS = {
    EventType.SOURCE_REJECTED_BATCH: "abgelehnt",
    EventType.SOURCE_SECRET_ROTATED: "Signaturgeheimnis",
    EventType.POLICY_UPDATE_PUBLISHED: "Richtlinien-Update",
    EventType.POLICY_UPDATE_REMINDER: "Prüfer",
    EventType.POLICY_QUESTION_ASKED: "Richtlinie",
    EventType.POLICY_QUESTION_ANSWERED: "beantwortet",
    EventType.POLICY_QUESTION_OVERDUE: "unbeantwortet",
    EventType.ESCALATION_OPENED: "Eskalation",
    EventType.ESCALATION_ACTION_OVERDUE: "Korrekturmaßnahme",
    EventType.DISAGREEMENT_OPENED: "Einspruch",
    EventType.DISPUTE_AWAITING_ARBITRATION: "Einspruch",
    EventType.DECISION_CORRECTED: "Entscheidung",
    EventType.CALIBRATION_OPENED: "Kalibrierung",
    EventType.CALIBRATION_CLOSED: "Übereinstimmung",
    EventType.QUIZ_ASSIGNED: "zugewiesen",
    EventType.REPORT_READY: "Bericht",
    EventType.TRAINING_ITEM_OVERDUE: "Schulung",
    EventType.AUDITOR_ACCURACY_DROPPED: "Genauigkeit",
    CHANNEL_TEST_EVENT: "Testnachricht",
}
# Words only an English text has: none may be left in a German one.
ENGLISH_ONLY = (" the ", " please ", " was ", " has ", " and ", " of ")

# The types whose sample has a moment (shown in the channel's time zone).
WITHOUT_MOMENT = {
    EventType.SOURCE_REJECTED_BATCH,
    EventType.CALIBRATION_CLOSED,
    EventType.REPORT_READY,
    EventType.AUDITOR_ACCURACY_DROPPED,
}


def payload(event_type: str) -> dict[str, Any]:
    """The sample's JSON, checked against the payload model of its type."""
    model = EVENT_PAYLOADS[EventType(event_type)]
    return model.model_validate(SAMPLES[event_type]).model_dump(mode="json")


def event_of(event_type: str, data: dict[str, Any]) -> Event:
    return Event(
        id=uuid.uuid4(),
        type=event_type,
        occurred_at=MOMENT,
        market="DE",
        data=data,
    )


def sample_event(event_type: str) -> Event:
    if event_type == CHANNEL_TEST_EVENT:
        return event_of(event_type, {"id": str(ID), "name": "qa-de"})
    return event_of(event_type, payload(event_type))


def strings_in(value: Any) -> list[str]:
    """Every string a payload holds (the people's own words, which may hold a "?")."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings_in(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings_in(item)]
    return []


def without_data_strings(text: str, data: dict[str, Any]) -> str:
    for value in sorted(strings_in(data), key=len, reverse=True):
        text = text.replace(value, "")
    return text


def json_of(body: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(body)
    return loaded


def mime_of(body: bytes) -> Message:
    """The MIME message the e-mail adapter sends for a stored body, parsed back."""
    adapter = EmailAdapter(httpx.AsyncHTTPTransport(), settings=Settings())
    mime = adapter.build_mime(
        OutgoingMessage(
            delivery_id=uuid.uuid4(),
            event_id=uuid.uuid4(),
            attempt=1,
            target="qa@example.com",
            credentials=ChannelCredentials(),
            body=body,
            content_type="application/vnd.plumbline.email+json",
        )
    )
    return message_from_bytes(bytes(mime))


def check_kind_shape(kind: str, body: bytes, *, link: str | None) -> str:
    """The body's shape and limits for ``kind``; returns its text for people."""
    if kind == "slack":
        sent = json_of(body)
        blocks = sent["blocks"]
        assert 1 <= len(blocks) <= 50
        assert blocks[0]["type"] == "header"
        assert len(blocks[0]["text"]["text"]) <= 150
        for block in blocks:
            if block["type"] == "section" and "text" in block:
                assert len(block["text"]["text"]) <= 3000
            for item in block.get("fields", []):
                assert len(item["text"]) <= 2000
        assert len(sent["text"]) <= 3000
        if link is not None:
            [actions] = [block for block in blocks if block["type"] == "actions"]
            assert actions["elements"][0]["url"] == link
        return body.decode()
    if kind == "teams":
        assert len(body) < 20_000
        sent = json_of(body)
        assert sent["type"] == "message"
        [attachment] = sent["attachments"]
        assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
        card = attachment["content"]
        assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
        if link is not None:
            assert card["actions"][0] == {
                "type": "Action.OpenUrl",
                "title": card["actions"][0]["title"],
                "url": link,
            }
        return body.decode()
    if kind == "lark":
        assert len(body) <= 19_800
        sent = json_of(body)
        assert sent["msg_type"] == "interactive"
        card = sent["card"]
        assert card["header"]["title"]["tag"] == "plain_text"
        if link is not None:
            [action] = [item for item in card["elements"] if item["tag"] == "action"]
            assert action["actions"][0]["url"] == link
        return body.decode()
    if kind == "email":
        stored = read_email(body)
        mime = mime_of(body)
        assert mime.get_content_type() in ("multipart/alternative", "multipart/mixed")
        types = [part.get_content_type() for part in mime.walk()]
        assert "text/plain" in types
        assert "text/html" in types
        if link is not None:
            assert link in stored.text
            assert link.replace("&", "&amp;") in stored.html
        return stored.subject + "\n" + stored.text
    raise AssertionError(kind)


# --- the template set ----------------------------------------------------------------------


def test_template_languages_are_the_message_languages() -> None:
    assert template_languages() == frozenset(MESSAGE_LANGUAGES)


@pytest.mark.parametrize("language", MESSAGE_LANGUAGES)
def test_every_event_type_has_a_template_and_a_link_in_every_language(language: str) -> None:
    expected = {t.value for t in EventType} | {CHANNEL_TEST_EVENT, DIGEST_EVENT_TYPE}
    assert expected <= template_types(language)
    # Nothing without a type behind it either (a misspelt file name would be dead).
    assert template_types(language) == expected
    assert set(LINK_PATHS) == expected
    assert set(EVENT_PAYLOADS) == set(EventType)


@pytest.mark.parametrize("language", MESSAGE_LANGUAGES)
def test_every_language_has_its_phrases(language: str) -> None:
    words = phrases(language)
    assert all((words.open_link, words.more, words.and_more, words.generic, words.acknowledge))
    assert "{count}" in words.and_more
    assert "{event_type}" in words.generic
    assert phrases("de").acknowledge == "Kenntnisnahme bestätigen"
    # A language without its own phrases gets English ones.
    assert phrases("fr") == phrases("en")


# --- every type, language and kind ---------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("event_type", [*(t.value for t in EventType), CHANNEL_TEST_EVENT])
def test_every_event_type_renders_in_every_language_and_kind(
    event_type: str, language: str
) -> None:
    event = sample_event(event_type)
    data = dict(event.data)
    parts = message_parts(event, language=language, public_url=PUBLIC_URL, time_zone=TIME_ZONE)
    link = f"{PUBLIC_URL}{EXPECTED_PATHS[event_type]}"

    # Title, text and fields: written out, nothing missing, nothing left of the template.
    assert parts.language == language
    assert parts.title
    assert parts.title != event_type
    shown = "\n".join(
        [parts.title, parts.text, *(f"{field.label}: {field.value}" for field in parts.fields)]
    )
    assert "{{" not in shown
    assert "{%" not in shown
    assert "None" not in shown
    assert "?" not in without_data_strings(shown, data), shown
    assert parts.fields, "every message shows some fields"
    assert parts.link is not None
    assert parts.link.url == link

    german = GERMAN_WORDS[event_type]
    if language == "de":
        assert german in shown
        lowered = f" {without_data_strings(parts.text, data).lower()} "
        assert not [word for word in ENGLISH_ONLY if word in lowered], parts.text
        assert parts.link.label == "In Plumbline öffnen"
    else:
        assert german not in without_data_strings(shown, data)
        assert parts.link.label == "Open in Plumbline"

    # Moments in the channel's time zone, in the language's form.
    if event_type not in WITHOUT_MOMENT and event_type != CHANNEL_TEST_EVENT:
        assert LOCAL[language] in shown, shown
    assert LOCAL[language] in parts.context

    for kind in KINDS:
        body = render_message(
            kind, event, language=language, public_url=PUBLIC_URL, time_zone=TIME_ZONE
        ).body
        if kind == "webhook":
            # Machines get the event as it is, in every language and time zone.
            assert body == render_webhook_body(event)
            assert set(json_of(body)) == {"id", "type", "occurred_at", "data"}
            continue
        text = check_kind_shape(kind, body, link=link)
        assert parts.title.split(":")[0] in text


@pytest.mark.parametrize(
    ("event_type", "expected"),
    [
        (EventType.AUDITOR_ACCURACY_DROPPED, PERCENT),
        (EventType.ESCALATION_OPENED, PERCENT),
        (EventType.CALIBRATION_CLOSED, PERCENT),
        (EventType.ESCALATION_OPENED, {"en": "p < 0.001", "de": "p < 0,001"}),
        (EventType.ESCALATION_OPENED, {"en": "12,345 audits", "de": "12.345 Audits"}),
        (EventType.POLICY_UPDATE_REMINDER, {"en": "1,234 reviewers", "de": "1.234 Prüfer"}),
        (EventType.QUIZ_ASSIGNED, {"en": "1,500 reviewers", "de": "1.500 Prüfern"}),
        (EventType.CALIBRATION_CLOSED, {"en": "alpha 0.71", "de": "Alpha 0,71"}),
        (EventType.REPORT_READY, {"en": "Nov 16, 2026", "de": "16.11.2026"}),
        (EventType.SOURCE_REJECTED_BATCH, {"en": "12,345", "de": "12.345"}),
    ],
)
def test_numbers_percentages_and_p_values_are_babels(
    event_type: str, expected: dict[str, str]
) -> None:
    event = sample_event(event_type)
    for language in LANGUAGES:
        parts = message_parts(event, language=language, public_url=None, time_zone=TIME_ZONE)
        shown = parts.text + "\n" + "\n".join(field.value for field in parts.fields)
        assert expected[language] in shown, shown


def test_moments_follow_the_channels_time_zone() -> None:
    event = sample_event(EventType.POLICY_QUESTION_ASKED)
    for time_zone, expected in (
        ("UTC", "27.11.2026, 10:00 UTC"),
        ("Europe/Berlin", "27.11.2026, 11:00 MEZ"),
        ("Asia/Kolkata", "27.11.2026, 15:30 GMT+05:30"),
        # A name that is no time zone never loses the message: UTC.
        ("Mars/Olympus_Mons", "27.11.2026, 10:00 UTC"),
    ):
        parts = message_parts(event, language="de", public_url=None, time_zone=time_zone)
        assert f"bis {expected}." in parts.text
    new_york = message_parts(event, language="en", public_url=None, time_zone="America/New_York")
    assert f"Nov 27, 2026, 5:00{NNBSP}AM EST" in new_york.text


def test_message_formatting_helpers() -> None:
    assert format_datetime(MOMENT, "de", time_zone="Europe/Berlin") == LOCAL["de"]
    assert format_datetime(MOMENT, "en", time_zone="Europe/Berlin") == LOCAL["en"]
    # Summer: CEST, and a naive moment is UTC.
    summer = datetime(2026, 7, 1, 10, 0)
    assert format_datetime(summer, "de", time_zone="Europe/Berlin") == "01.07.2026, 12:00 MESZ"
    assert format_p_value(0.0004, "en") == "p < 0.001"
    assert format_p_value(0.0346, "de") == "p = 0,035"
    assert format_p_value(0.5, "en") == "p = 0.500"
    assert (language_name("en", "de"), language_name("de", "en")) == ("Englisch", "German")
    assert language_name("not a language", "en") == "not a language"
    assert time_zone_of("Nowhere/Nothing") is UTC
    assert time_zone_of("../etc/passwd") is UTC


# --- policy updates ------------------------------------------------------------------------


def policy_update(texts: dict[str, dict[str, str]], *, original: str = "en") -> Event:
    data = payload(EventType.POLICY_UPDATE_PUBLISHED)
    data |= {"texts": texts, "language": original}
    EVENT_PAYLOADS[EventType.POLICY_UPDATE_PUBLISHED].model_validate(data)
    return event_of(EventType.POLICY_UPDATE_PUBLISHED, data)


def test_policy_update_in_the_channels_language_when_it_has_one() -> None:
    event = policy_update(update_texts("en", "de"))
    german = message_parts(event, language="de", public_url=PUBLIC_URL, time_zone=TIME_ZONE)
    assert german.title == "Richtlinien-Update: Hassrede in Nutzernamen"
    assert german.text.startswith("Beleidigungen in Nutzernamen werden ab jetzt entfernt")
    assert "Nutzernamen mit Beleidigungen werden entfernt.\n\nEinsprüche wie üblich." in (
        german.text
    )
    assert "nur auf" not in german.text
    assert "Usernames" not in german.text
    assert f"Gültig ab {LOCAL['de']}." in german.text
    assert ("Richtlinien", "HATE v3, USERNAME v1") in [(f.label, f.value) for f in german.fields]
    english = message_parts(event, language="en", public_url=PUBLIC_URL, time_zone=TIME_ZONE)
    assert english.title == "Policy update: Hate speech in usernames"
    assert "only available" not in english.text


def test_english_only_policy_update_shows_the_original_in_a_german_frame() -> None:
    event = policy_update(update_texts("en"))
    for kind in ("slack", "teams", "lark", "email"):
        body = render_message(
            kind, event, language="de", public_url=PUBLIC_URL, time_zone=TIME_ZONE
        ).body
        text = check_kind_shape(kind, body, link=f"{PUBLIC_URL}/v1/policy-updates/{ID}")
        assert "Dieses Update liegt nur auf Englisch vor:" in text
        assert "Hate speech in usernames" in text
        assert "Slurs in usernames are removed from now on" in text
        assert "Appeals follow the usual path." in text
        assert "Bitte lesen Sie das Update und bestätigen Sie es in Plumbline." in text
    parts = message_parts(event, language="de", public_url=PUBLIC_URL, time_zone=TIME_ZONE)
    assert parts.title == "Richtlinien-Update: Hate speech in usernames"
    assert parts.text.startswith(
        "Dieses Update liegt nur auf Englisch vor:\n\nHate speech in usernames\n"
        "Slurs in usernames are removed"
    )
    # And the other way round: a German-only update for an English channel.
    german_only = policy_update(update_texts("de"), original="de")
    english = message_parts(german_only, language="en", public_url=None)
    assert english.text.startswith("This update is only available in German:")
    assert "Hassrede in Nutzernamen" in english.text


def test_a_long_policy_update_body_is_cut_with_a_link_in_every_kind() -> None:
    texts = update_texts("en")
    texts["en"]["body"] = "A very long paragraph of policy text with <markup> & more. " * 5_000
    event = policy_update(texts)
    link = f"{PUBLIC_URL}/v1/policy-updates/{ID}"
    for language in LANGUAGES:
        for kind in ("slack", "teams", "lark", "email"):
            body = render_message(
                kind, event, language=language, public_url=PUBLIC_URL, time_zone=TIME_ZONE
            ).body
            text = check_kind_shape(kind, body, link=link)
            if kind == "slack":
                section = json_of(body)["blocks"][1]["text"]["text"]
                more = "Mehr in Plumbline" if language == "de" else "More in Plumbline"
                assert section.endswith(f"<{link}|{more}>")
            elif kind == "email":
                assert len(read_email(body).text) < 110_000
                assert f"in Plumbline: {link})" in text


def test_personal_link_is_a_second_action_in_every_kind() -> None:
    event = policy_update(update_texts("en", "de"))
    acknowledge = MessageLink("Acknowledge", f"{PUBLIC_URL}/v1/policy-updates/{ID}/ack?t=x&y=1")
    for kind in ("slack", "teams", "lark", "email"):
        body = render_message(
            kind,
            event,
            language="en",
            public_url=PUBLIC_URL,
            time_zone=TIME_ZONE,
            personal_link=acknowledge,
        ).body
        if kind == "slack":
            [actions] = [b for b in json_of(body)["blocks"] if b["type"] == "actions"]
            assert [button["url"] for button in actions["elements"]] == [
                f"{PUBLIC_URL}/v1/policy-updates/{ID}",
                acknowledge.url,
            ]
        elif kind == "teams":
            card = json_of(body)["attachments"][0]["content"]
            assert [action["url"] for action in card["actions"]][1] == acknowledge.url
        elif kind == "lark":
            [action] = [e for e in json_of(body)["card"]["elements"] if e["tag"] == "action"]
            assert action["actions"][1]["url"] == acknowledge.url
        else:
            stored = read_email(body)
            assert f"Acknowledge: {acknowledge.url}" in stored.text
            assert f'<a href="{acknowledge.url.replace("&", "&amp;")}">Acknowledge</a>' in (
                stored.html
            )
    # Without one, one action only.
    plain = render_message("teams", event, language="en", public_url=PUBLIC_URL).body
    assert len(json_of(plain)["attachments"][0]["content"]["actions"]) == 1


# --- digests -------------------------------------------------------------------------------


def digest_event(count: int) -> Event:
    types = [t for t in EventType]
    items = []
    for number in range(count):
        event_type = types[number % len(types)]
        items.append(
            {
                "event_id": str(uuid.uuid4()),
                "type": event_type.value,
                "occurred_at": (MOMENT + timedelta(seconds=number)).isoformat(),
                "data": payload(event_type),
            }
        )
    return event_of(
        DIGEST_EVENT_TYPE,
        {
            "channel_id": str(ID),
            "period_start": (MOMENT - timedelta(hours=1)).isoformat(),
            "period_end": MOMENT.isoformat(),
            "items": items,
        },
    )


def test_a_small_digest_lists_every_item_with_its_link_in_every_kind() -> None:
    event = digest_event(3)
    for language, title, line in (
        ("en", "Digest: 3 notifications", "Intake request from acme-moderation rejected"),
        ("de", "Zusammenfassung: 3 Benachrichtigungen", "Anfrage von acme-moderation abgelehnt"),
    ):
        parts = message_parts(event, language=language, public_url=PUBLIC_URL, time_zone=TIME_ZONE)
        assert parts.title == title
        assert len(parts.lines) == 3
        assert parts.hidden_lines == 0
        assert parts.lines[0].title == line
        assert parts.lines[2].url == f"{PUBLIC_URL}/v1/policy-updates/{ID}"
        assert "?" not in " ".join(f"{item.title} {item.summary}" for item in parts.lines)
        assert parts.link is not None
        assert parts.link.url == f"{PUBLIC_URL}/v1/channels/{ID}"
        for kind in ("slack", "teams", "lark", "email"):
            body = render_message(
                kind, event, language=language, public_url=PUBLIC_URL, time_zone=TIME_ZONE
            ).body
            text = check_kind_shape(kind, body, link=f"{PUBLIC_URL}/v1/channels/{ID}")
            assert title in text
            assert line in text
            assert f"{PUBLIC_URL}/v1/sources" in text
            assert f"{PUBLIC_URL}/v1/policy-updates/{ID}" in text
            # All three shown: no "and K more".
            assert "… and" not in text
            assert "… und" not in text


@pytest.mark.parametrize("count", [5_000, 10_000])
def test_a_large_digest_is_cut_with_and_k_more_in_every_kind(count: int) -> None:
    event = digest_event(count)
    for language, title, more in (
        ("en", f"Digest: {count:,} notifications", " more"),
        ("de", f"Zusammenfassung: {count:,} Benachrichtigungen".replace(",", "."), " weitere"),
    ):
        parts = message_parts(event, language=language, public_url=PUBLIC_URL, time_zone=TIME_ZONE)
        assert parts.title == title
        assert len(parts.lines) == MAX_DIGEST_LINES
        assert parts.hidden_lines == count - MAX_DIGEST_LINES
        for kind in ("slack", "teams", "lark", "email"):
            body = render_message(
                kind, event, language=language, public_url=PUBLIC_URL, time_zone=TIME_ZONE
            ).body
            text = check_kind_shape(kind, body, link=f"{PUBLIC_URL}/v1/channels/{ID}")
            assert title in text
            # "… and K more" counts what was left out: shown lines + K = every item.
            if kind == "email":
                stored = read_email(body)
                shown = stored.text.count("\n• ")
                expected = "… and " if language == "en" else "… und "
                assert f"{expected}{format_count(count - shown, language)}{more}" in stored.text
            else:
                sent = json_of(body)
                shown_text = digest_text(kind, sent)
                shown = shown_text.count("\n• " if kind == "slack" else "\n- ")
                assert 1 <= shown < MAX_DIGEST_LINES
                left = format_count(count - shown, language)
                assert shown_text.endswith(f"{left}{more}"), shown_text[-200:]


def format_count(value: int, language: str) -> str:
    return f"{value:,}" if language == "en" else f"{value:,}".replace(",", ".")


def digest_text(kind: str, sent: dict[str, Any]) -> str:
    if kind == "slack":
        return str(sent["blocks"][1]["text"]["text"])
    if kind == "teams":
        return str(sent["attachments"][0]["content"]["body"][1]["text"])
    return str(sent["card"]["elements"][0]["text"]["content"])


def test_a_digest_with_odd_items_still_renders() -> None:
    event = event_of(
        DIGEST_EVENT_TYPE,
        {
            "channel_id": str(ID),
            "period_start": MOMENT.isoformat(),
            "period_end": MOMENT.isoformat(),
            "items": [
                {"type": "no.such_type", "data": {}},
                "not an item",
                {"type": EventType.ESCALATION_OPENED.value, "data": {"title": "partial"}},
            ],
        },
    )
    parts = message_parts(event, language="de", public_url=PUBLIC_URL, time_zone=TIME_ZONE)
    assert parts.title == "Zusammenfassung: 2 Benachrichtigungen"
    assert [line.title for line in parts.lines] == ["no.such_type", "Eskalation: partial"]
    for kind in SUPPORTED_KINDS:
        assert render_message(kind, event, language="de", public_url=PUBLIC_URL).body


# --- never a failed message ----------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"id": "x", "texts": "not a mapping", "effective_at": "not a date", "value": "high"},
        {"id": "x", "texts": {"en": {"title": "T"}}, "policy_codes": None, "versions": 3},
    ],
)
@pytest.mark.parametrize("event_type", [t.value for t in EventType])
def test_data_a_template_cannot_show_still_gives_a_message(
    event_type: str, data: dict[str, Any]
) -> None:
    event = event_of(event_type, data)
    for language in ("en", "de", "fr"):
        for kind in SUPPORTED_KINDS:
            rendered = render_message(
                kind, event, language=language, public_url=PUBLIC_URL, time_zone="Nowhere/X"
            )
            assert rendered.body


def test_a_language_without_templates_gets_english() -> None:
    parts = message_parts(sample_event(EventType.QUIZ_ASSIGNED), language="fr", public_url=None)
    assert parts.language == "en"
    assert parts.title == "Quiz assigned: Usernames quiz"
