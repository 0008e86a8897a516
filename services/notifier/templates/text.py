"""Short per-language texts for chat channels (Slack, Teams, Lark) and email subjects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEFAULT_LANGUAGE = "en"
MAX_FIELD_CHARS = 300

TEXT_TEMPLATES: dict[str, dict[str, str]] = {
    "channel.test": {
        "en": (
            "This is a test message from Plumbline for channel '{name}'. If you can read it, "
            "the channel delivers."
        ),
        "de": (
            "Dies ist eine Testnachricht von Plumbline für den Kanal '{name}'. Wenn Sie sie "
            "lesen können, stellt der Kanal zu."
        ),
    },
    "source.rejected_batch": {
        "en": (
            "Source {source}: a signed request was rejected with HTTP {status}: {reason}. "
            "Nothing of it was stored; please fix the sender."
        ),
        "de": (
            "Quelle {source}: Eine signierte Anfrage wurde mit HTTP {status} abgelehnt: "
            "{reason}. Nichts davon wurde gespeichert; bitte den Absender korrigieren."
        ),
    },
    "disagreement.opened": {
        "en": (
            "Audit of moderator {moderator_id} ({market}, {queue}): decision {decision_id} was "
            "judged incorrect ({error_type}, severity {severity}; expected: {expected_action}). "
            "The moderator may dispute it until {dispute_deadline}. Disagreement {id}."
        ),
        "de": (
            "Audit von Moderator {moderator_id} ({market}, {queue}): Entscheidung {decision_id} "
            "wurde als falsch bewertet ({error_type}, Schweregrad {severity}; erwartet: "
            "{expected_action}). Einspruch ist bis {dispute_deadline} möglich. Abweichung {id}."
        ),
    },
    "dispute.awaiting_arbitration": {
        "en": (
            "A dispute has waited {waiting_hours} h for arbitration (SLA: {sla_hours} h): "
            "moderator {moderator_id} ({market}, {queue}) contests the verdict on decision "
            "{decision_id}. Reason: {dispute_reason}. Please resolve disagreement {id}."
        ),
        "de": (
            "Ein Einspruch wartet seit {waiting_hours} h auf eine Entscheidung (SLA: "
            "{sla_hours} h): Moderator {moderator_id} ({market}, {queue}) bestreitet die "
            "Bewertung von Entscheidung {decision_id}. Begründung: {dispute_reason}. Bitte "
            "Abweichung {id} entscheiden."
        ),
    },
    "decision.corrected": {
        "en": (
            "QA corrected decision {event_id} on content {content_id}: {original_action} "
            "should have been {corrected_action} ({error_type}, severity {severity})."
        ),
        "de": (
            "Die QA hat Entscheidung {event_id} zu Inhalt {content_id} korrigiert: statt "
            "{original_action} wäre {corrected_action} richtig gewesen ({error_type}, "
            "Schweregrad {severity})."
        ),
    },
    "source.secret_rotated": {
        "en": (
            "Source {source} has a new signing secret; the previous one is accepted until "
            "{previous_secret_expires_at}."
        ),
        "de": (
            "Quelle {source} hat ein neues Signaturgeheimnis; das bisherige gilt noch bis "
            "{previous_secret_expires_at}."
        ),
    },
    "calibration.opened": {
        "en": (
            "Calibration '{title}' ({market}) is open for {participants}; please label by "
            "{deadline}. Session {id}."
        ),
        "de": (
            "Kalibrierung '{title}' ({market}) ist offen für {participants}; bitte bis "
            "{deadline} labeln. Sitzung {id}."
        ),
    },
    "calibration.closed": {
        "en": (
            "Calibration '{title}' ({market}) closed: Krippendorff's alpha "
            "{krippendorff_alpha}, agreement {percent_agreement}, {flagged_items} of {n_items} "
            "items flagged, {participants} participants."
        ),
        "de": (
            "Kalibrierung '{title}' ({market}) abgeschlossen: Krippendorffs Alpha "
            "{krippendorff_alpha}, Übereinstimmung {percent_agreement}, {flagged_items} von "
            "{n_items} Items markiert, {participants} Teilnehmende."
        ),
    },
    "training.item_overdue": {
        "en": (
            "Training overdue: {reviewer_id} has not completed item {item_id} ({item_kind}) "
            'of plan "{plan_title}" ({plan_kind}), due {due_at}. Owners: {owners}.'
        ),
        "de": (
            "Schulung überfällig: {reviewer_id} hat Punkt {item_id} ({item_kind}) des Plans "
            "„{plan_title}“ ({plan_kind}) nicht erledigt, fällig am {due_at}. "
            "Verantwortlich: {owners}."
        ),
    },
    "auditor.accuracy_dropped": {
        "en": (
            "QA auditor {auditor_id}: accuracy on golden items in week {week} was {accuracy} "
            "({matched} of {judged} matched), below the threshold of {threshold}."
        ),
        "de": (
            "QA-Auditor {auditor_id}: Die Genauigkeit bei Golden Items in Woche {week} lag bei "
            "{accuracy} ({matched} von {judged} getroffen), unter dem Schwellenwert {threshold}."
        ),
    },
}

# Fields holding codes, and the codes shown to people in their language (a code without a
# label shows as is).
LABELLED_FIELDS = frozenset(
    {"error_type", "severity", "expected_action", "original_action", "corrected_action"}
)
VALUE_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "missed_violation": "missed violation",
        "over_enforcement": "over-enforcement",
        "wrong_policy": "wrong policy",
        "wrong_action": "wrong action",
    },
    "de": {
        "missed_violation": "übersehener Verstoß",
        "over_enforcement": "übermäßige Durchsetzung",
        "wrong_policy": "falsche Richtlinie",
        "wrong_action": "falsche Maßnahme",
        "critical": "kritisch",
        "major": "schwer",
        "minor": "leicht",
        "approve": "freigeben",
        "remove": "entfernen",
        "restrict": "einschränken",
        "escalate": "eskalieren",
    },
}


class _Fields(dict[str, str]):
    """Template fields: a missing (or null) one shows as "?" rather than failing the message."""

    def __missing__(self, key: str) -> str:
        return "?"


def render_text(event_type: str, language: str, data: Mapping[str, Any]) -> str:
    """The message for ``event_type`` in ``language`` (English when there is none). No I/O.

    Raises LookupError for an event type without a text template.
    """
    templates = TEXT_TEMPLATES.get(event_type)
    if templates is None:
        raise LookupError(f"no text template for event type '{event_type}'")
    template = templates.get(language) or templates[DEFAULT_LANGUAGE]
    labels = VALUE_LABELS.get(language, VALUE_LABELS[DEFAULT_LANGUAGE])
    fields = _Fields(
        {
            key: _shorten(_show(value, labels if key in LABELLED_FIELDS else {}))
            for key, value in data.items()
            if value is not None
        }
    )
    return template.format_map(fields)


def _show(value: Any, labels: Mapping[str, str]) -> str:
    """A field as people read it: codes by their label, lists comma-separated."""
    if isinstance(value, list):
        return ", ".join(_show(item, labels) for item in value)
    text = str(value)
    return labels.get(text, text)


def _shorten(value: str) -> str:
    if len(value) <= MAX_FIELD_CHARS:
        return value
    return value[: MAX_FIELD_CHARS - 1] + "…"
