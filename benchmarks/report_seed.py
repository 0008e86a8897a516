"""Bulk seeding for the reports benchmark: 90 days of moderation history, loaded with COPY.

``ReportSeeder`` writes what the real code writes for a decision and its QA life, without the
webhook or the API: reference data (markets with their real time zones from
``shared.markets``, queues, policies, reviewers, one source), decisions (and the idempotency
key table ``decision_event_keys`` when the schema has it) with their intake batches (marked
applied: the benchmark rebuilds the rollups itself), daily sampling runs, audits and
verdicts of a ~5 % sample (~7 % judged incorrect, error types derived by
``shared.verdicts.derive_error_type``), the disagreement each incorrect verdict opens with
its history (some disputed, some of those overturned, which makes the verdict effectively
correct), and appeal outcomes.

The shape: ~10 markets, 4 queues each, ~2,000 moderators with uneven workloads (each works in
its market's queues, one moderator in six is weaker), 15 policy codes, one or two labels per
enforcing decision, mixed actions and log-normal handling times.

Deterministic: every chunk of ``CHUNK`` decisions draws from its own seeded generator
(``numpy.random.default_rng((seed, phase, chunk))``), so the same sizes and end day give the
same rows. ``seed(conn, size)`` grows the data set: the first call loads ``size`` decisions,
a later call with a larger size adds the difference, spread over the same 90 days, in time
order within each call (rows arrive roughly in time order in production, so the BRIN index
on ``decided_at`` stays useful). Rows are generated in chunks; nothing holds the whole data
set in memory.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import numpy as np
import orjson

from shared.markets import default_language, default_time_zone
from shared.verdicts import derive_error_type

CHUNK = 100_000
DAYS = 90
AUDIT_SHARE = 0.05
APPEAL_SHARE = 0.01  # of enforcing decisions
APPEAL_REVERSED_SHARE = 0.25
DISPUTE_WINDOW = timedelta(hours=72)  # Settings.dispute_window_hours' default

# Market code and its share of the decisions.
MARKETS: tuple[tuple[str, float], ...] = (
    ("US", 0.22), ("GB", 0.10), ("DE", 0.12), ("FR", 0.09), ("ES", 0.07),
    ("BR", 0.12), ("MX", 0.07), ("IN", 0.10), ("JP", 0.06), ("AU", 0.05),
)  # fmt: skip
QUEUE_KINDS = ("video", "image", "comment", "live")
# Code, share among the labels of enforcing decisions, severity tier.
POLICIES: tuple[tuple[str, float, str], ...] = (
    ("spam", 0.22, "low"), ("scam", 0.09, "medium"), ("hate_speech", 0.10, "high"),
    ("harassment", 0.10, "medium"), ("violent_graphic", 0.06, "high"),
    ("adult_nudity", 0.11, "medium"), ("misinformation", 0.06, "medium"),
    ("self_harm", 0.03, "high"), ("terrorism", 0.01, "critical"),
    ("child_safety", 0.005, "critical"), ("illegal_goods", 0.04, "high"),
    ("impersonation", 0.04, "low"), ("privacy", 0.03, "medium"),
    ("intellectual_property", 0.07, "low"), ("bullying", 0.035, "medium"),
)  # fmt: skip
ACTIONS = ("approve", "remove", "restrict", "escalate")
ACTION_SHARES = (0.50, 0.36, 0.10, 0.04)
SEVERITIES = ("critical", "major", "minor")
SEVERITY_SHARES = (0.10, 0.35, 0.55)
MODERATORS = 2_000
AUDITORS_PER_MARKET = 10
SOURCE_ID = uuid.UUID("b3c4e1d0-0000-4000-8000-00000000be7c")
SOURCE_NAME = "bench-reports-platform"
_NAMESPACE = uuid.UUID("b3c4e1d0-0000-4000-8000-000000000000")

DECISION_COLUMNS = (
    "id", "source_id", "event_id", "content_id", "content_type", "queue", "market",
    "language", "moderator_id", "action", "policy_labels", "decided_at", "handling_time_ms",
    "metadata", "received_at", "intake_batch_id",
)  # fmt: skip
AUDIT_COLUMNS = (
    "id", "decision_id", "sampling_run_id", "reason", "market", "queue", "language",
    "moderator_id", "policy_labels", "day", "status", "priority", "auditor_id", "claimed_at",
    "completed_at", "is_golden", "created_at",
)  # fmt: skip
VERDICT_COLUMNS = (
    "id", "audit_id", "decision_id", "auditor_id", "moderator_id", "market", "queue", "day",
    "outcome", "effective_outcome", "expected_action", "expected_labels", "severity",
    "error_type", "policy_versions", "created_at",
)  # fmt: skip
DISAGREEMENT_COLUMNS = (
    "id", "audit_id", "verdict_id", "moderator_id", "auditor_id", "market", "status",
    "dispute_deadline", "dispute_reason", "disputed_at", "resolved_by", "resolution_note",
    "resolved_at", "created_at",
)  # fmt: skip
CHANGE_COLUMNS = ("disagreement_id", "from_status", "to_status", "actor", "note", "created_at")
APPEAL_COLUMNS = (
    "id", "source_id", "event_id", "content_id", "original_event_id", "decision_id",
    "moderator_id", "original_action", "outcome", "decided_at", "received_at",
)  # fmt: skip
# decision_event_keys (the idempotency key table of a partitioned decisions table): the
# columns the seeder knows how to fill.
EVENT_KEY_VALUES = ("source_id", "event_id", "decision_id", "decided_at", "created_at")


@dataclass
class SeedCounts:
    """Rows the seeder wrote (cumulative over ``seed`` calls)."""

    decisions: int = 0
    audits: int = 0
    verdicts: int = 0
    incorrect: int = 0
    effectively_incorrect: int = 0
    disagreements: int = 0
    disputed: int = 0
    overturned: int = 0
    appeals: int = 0
    appeals_reversed: int = 0
    event_keys: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Chunk:
    """One chunk's decisions as columns (numpy arrays and lists)."""

    ids: np.ndarray[Any, Any]
    moderators: np.ndarray[Any, Any]
    queues: np.ndarray[Any, Any]
    actions: np.ndarray[Any, Any]
    labels: list[list[str]]
    decided_at: list[datetime]
    handling: list[int | None]


def _uuid(kind: str, number: int) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"{kind}-{number}")


class ReportSeeder:
    """Seeds one database (already migrated to head) with ``seed``; see the module docstring.

    ``end_day`` is the last UTC day of the history; decisions fall in the ``DAYS`` UTC days
    ending with it, so each market's local days run from one day before to one day after.
    ``moderators`` and ``audit_share`` shrink or densify the shape for small test data sets.
    """

    def __init__(
        self,
        *,
        end_day: date,
        seed: int = 8,
        moderators: int = MODERATORS,
        audit_share: float = AUDIT_SHARE,
    ) -> None:
        self.end_day = end_day
        self.random_seed = seed
        self.audit_share = audit_share
        self.start = datetime.combine(end_day - timedelta(days=DAYS - 1), time(), UTC)
        self.end = self.start + timedelta(days=DAYS)
        # Verdicts, disputes and appeals happen until noon after the last day.
        self.as_of = self.end + timedelta(hours=12)
        self.counts = SeedCounts()
        self._phase = 0
        self._event_key_columns: tuple[str, ...] | None = None

        rng = np.random.default_rng((seed, 0))
        self.markets = [code for code, _ in MARKETS]
        self.zones = {code: ZoneInfo(default_time_zone(code)) for code in self.markets}
        self.queue_names = [f"{m.lower()}-{kind}" for m in self.markets for kind in QUEUE_KINDS]
        self.queue_market = [m for m in self.markets for _ in QUEUE_KINDS]
        market_shares = np.array([share for _, share in MARKETS])
        market_shares /= market_shares.sum()
        self.moderator_ids = [f"mod-{n:04d}" for n in range(moderators)]
        self.moderator_market = rng.choice(len(self.markets), size=moderators, p=market_shares)
        # Each moderator works in two queues of its market (possibly the same one twice).
        kinds = rng.integers(0, len(QUEUE_KINDS), size=(moderators, 2))
        self.moderator_queues = self.moderator_market[:, None] * len(QUEUE_KINDS) + kinds
        # Workloads vary tenfold (full-time, part-time, trainees).
        workload = rng.uniform(0.2, 2.0, size=moderators)
        self.moderator_p = workload / workload.sum()
        # Most moderators are right ~95 % of the time, one in six ~82 %: ~7 % incorrect.
        weak = rng.random(moderators) < 1 / 6
        self.moderator_accuracy = np.where(
            weak, rng.beta(41, 9, size=moderators), rng.beta(190, 10, size=moderators)
        )
        # One in ten started within the last 30 days.
        new = rng.random(moderators) < 0.1
        self.moderator_started = [
            end_day - timedelta(days=int(d))
            for d in np.where(
                new, rng.integers(0, 30, moderators), rng.integers(120, 1500, moderators)
            )
        ]
        self.auditors = {
            m: [f"qa-{m.lower()}-{k:02d}" for k in range(AUDITORS_PER_MARKET)] for m in self.markets
        }
        self.policy_codes = [code for code, _, _ in POLICIES]
        shares = np.array([share for _, share, _ in POLICIES])
        self.policy_p = shares / shares.sum()

    # ------------------------------------------------------------------ reference data

    async def seed_reference(self, connection: asyncpg.Connection) -> None:
        """Markets, queues, policies, reviewers (moderators and auditors) and the source."""
        await connection.copy_records_to_table(
            "markets",
            columns=["code", "default_language", "time_zone"],
            records=[(m, default_language(m), default_time_zone(m)) for m in self.markets],
        )
        await connection.copy_records_to_table(
            "queues",
            columns=["name", "market_code"],
            records=list(zip(self.queue_names, self.queue_market, strict=True)),
        )
        await connection.copy_records_to_table(
            "policies",
            columns=["code", "title", "severity_tier"],
            records=[(code, code.replace("_", " ").title(), tier) for code, _, tier in POLICIES],
        )
        reviewers: list[tuple[Any, ...]] = []
        for n, moderator in enumerate(self.moderator_ids):
            market = self.markets[int(self.moderator_market[n])]
            reviewers.append(
                (
                    moderator,
                    f"Moderator {n}",
                    [market],
                    [default_language(market)],
                    self.moderator_started[n],
                    f"{market.lower()}-team-{n % 8}",
                )
            )
        for market, auditors in self.auditors.items():
            for n, auditor in enumerate(auditors):
                reviewers.append(
                    (
                        auditor,
                        f"Auditor {market} {n}",
                        [market],
                        [default_language(market)],
                        self.end_day - timedelta(days=700),
                        f"{market.lower()}-qa",
                    )
                )
        await connection.copy_records_to_table(
            "reviewers",
            columns=["id", "display_name", "markets", "languages", "started_on", "team"],
            records=reviewers,
        )
        await connection.execute(
            "INSERT INTO sources (id, name, secret_encrypted) VALUES ($1, $2, $3)",
            SOURCE_ID,
            SOURCE_NAME,
            b"not a real secret: the benchmark never posts webhooks",
        )
        self._event_key_columns = await self._key_table_columns(connection)

    async def _key_table_columns(self, connection: asyncpg.Connection) -> tuple[str, ...] | None:
        """The columns of ``decision_event_keys`` to fill, or None when the table is absent.

        Raises when it has a required column the seeder does not know (the seeder must then
        learn it, rather than load rows the intake would not have written).
        """
        rows = await connection.fetch(
            "SELECT column_name, is_nullable, column_default, is_identity "
            "FROM information_schema.columns "
            "WHERE table_schema = 'public' AND table_name = 'decision_event_keys'"
        )
        if not rows:
            return None
        known = [row["column_name"] for row in rows if row["column_name"] in EVENT_KEY_VALUES]
        unknown = [
            row["column_name"]
            for row in rows
            if row["column_name"] not in EVENT_KEY_VALUES
            and row["is_nullable"] == "NO"
            and row["column_default"] is None
            and row["is_identity"] != "YES"
        ]
        if unknown:
            raise RuntimeError(f"decision_event_keys has columns the seeder cannot fill: {unknown}")
        return tuple(known)

    async def ensure_partitions(self, connection: asyncpg.Connection) -> list[str]:
        """Monthly partitions covering the history when ``decisions`` is partitioned.

        The migration creates partitions from the current month on; the history goes back 90
        days, so earlier months are created here the way the partition maintenance names
        them (``decisions_pYYYY_MM``); rows outside every partition would land in DEFAULT.
        """
        partitioned = await connection.fetchval(
            "SELECT count(*) FROM pg_partitioned_table WHERE partrelid = 'decisions'::regclass"
        )
        if not partitioned:
            return []
        created: list[str] = []
        month = date(self.start.year, self.start.month, 1)
        while month <= self.as_of.date():
            following = date(month.year + month.month // 12, month.month % 12 + 1, 1)
            name = f"decisions_p{month.year:04d}_{month.month:02d}"
            exists = await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", name)
            if not exists:
                await connection.execute(
                    f"CREATE TABLE {name} PARTITION OF decisions "
                    f"FOR VALUES FROM ('{month.isoformat()} 00:00+00') "
                    f"TO ('{following.isoformat()} 00:00+00')"
                )
                created.append(name)
            month = following
        return created

    # ----------------------------------------------------------------------- history

    async def seed(self, connection: asyncpg.Connection, size: int) -> SeedCounts:
        """Grow the history to ``size`` decisions (the new ones spread over the 90 days)."""
        if self.counts.decisions == 0 and self._event_key_columns is None:
            self._event_key_columns = await self._key_table_columns(connection)
        first = self.counts.decisions
        added = size - first
        if added <= 0:
            return self.counts
        self._phase += 1
        for chunk_number, chunk_start in enumerate(range(0, added, CHUNK)):
            count = min(CHUNK, added - chunk_start)
            rng = np.random.default_rng((self.random_seed, self._phase, chunk_number))
            chunk = self._decisions(rng, first_id=first + chunk_start + 1, offset=chunk_start,
                                    count=count, phase_size=added)  # fmt: skip
            async with connection.transaction():
                await self._write_chunk(connection, rng, chunk)
        await self._finish_phase(connection)
        return self.counts

    def _decisions(
        self, rng: np.random.Generator, *, first_id: int, offset: int, count: int, phase_size: int
    ) -> _Chunk:
        moderators = rng.choice(len(self.moderator_ids), size=count, p=self.moderator_p)
        queues = self.moderator_queues[moderators, rng.integers(0, 2, size=count)]
        actions = rng.choice(len(ACTIONS), size=count, p=ACTION_SHARES)
        two = rng.random(count) < 0.2
        first_label = rng.choice(len(self.policy_codes), size=count, p=self.policy_p)
        second_label = rng.choice(len(self.policy_codes), size=count, p=self.policy_p)
        codes = self.policy_codes
        labels: list[list[str]] = []
        for action, both, one, other in zip(
            actions.tolist(), two.tolist(), first_label.tolist(), second_label.tolist(),
            strict=True,
        ):  # fmt: skip
            if action == 0:
                labels.append([])
            elif both and one != other:
                labels.append([codes[one], codes[other]])
            else:
                labels.append([codes[one]])
        # Evenly through the 90 days in decision order, with jitter inside each slot.
        slots = (np.arange(offset, offset + count) + rng.random(count)) / phase_size
        micros = (slots * DAYS * 86_400_000_000).astype(np.int64).tolist()
        decided_at = [self.start + timedelta(microseconds=m) for m in micros]
        handling_ms = np.clip(rng.lognormal(9.6, 0.9, size=count), 500, 1_800_000).astype(int)
        reported = rng.random(count) >= 0.03
        handling: list[int | None] = [
            h if ok else None for h, ok in zip(handling_ms.tolist(), reported.tolist(), strict=True)
        ]
        return _Chunk(
            ids=np.arange(first_id, first_id + count),
            moderators=moderators,
            queues=queues,
            actions=actions,
            labels=labels,
            decided_at=decided_at,
            handling=handling,
        )

    async def _write_chunk(
        self, connection: asyncpg.Connection, rng: np.random.Generator, chunk: _Chunk
    ) -> None:
        ids = chunk.ids.tolist()
        batch_id = _uuid("batch", ids[0])
        moderator_ids = self.moderator_ids
        queue_names = self.queue_names
        queue_market = self.queue_market
        languages = {m: default_language(m) for m in self.markets}
        received_delay = rng.integers(1, 120, size=len(ids)).tolist()
        decisions = [
            (
                decision_id, SOURCE_ID, f"bench-{decision_id}", f"content-{decision_id}",
                QUEUE_KINDS[queue % len(QUEUE_KINDS)], queue_names[queue], queue_market[queue],
                languages[queue_market[queue]], moderator_ids[moderator], ACTIONS[action],
                labels, decided_at, handling, "{}", decided_at + timedelta(seconds=delay),
                batch_id,
            )
            for decision_id, moderator, queue, action, labels, decided_at, handling, delay in zip(
                ids, chunk.moderators.tolist(), chunk.queues.tolist(), chunk.actions.tolist(),
                chunk.labels, chunk.decided_at, chunk.handling, received_delay, strict=True,
            )
        ]  # fmt: skip
        await connection.copy_records_to_table(
            "decisions", columns=DECISION_COLUMNS, records=decisions
        )
        if self._event_key_columns is not None:
            # Where each key column's value sits in a decision row.
            positions = {
                "source_id": 1, "event_id": 2, "decision_id": 0, "decided_at": 11,
                "created_at": 14,
            }  # fmt: skip
            picks = [positions[column] for column in self._event_key_columns]
            await connection.copy_records_to_table(
                "decision_event_keys",
                columns=list(self._event_key_columns),
                records=[tuple(row[i] for i in picks) for row in decisions],
            )
            self.counts.event_keys += len(decisions)
        # The intake transaction's batch, already counted (the benchmark rebuilds rollups).
        await connection.execute(
            "INSERT INTO intake_batches (batch_id, first_decision_id, last_decision_id, "
            "decisions, created_at, applied_at) VALUES ($1, $2, $3, $4, $5, $5)",
            batch_id,
            ids[0],
            ids[-1],
            len(ids),
            max(row[14] for row in decisions),
        )
        self.counts.decisions += len(ids)
        await self._write_audits(connection, rng, decisions)
        await self._write_appeals(connection, rng, decisions)

    def _local_day(self, market: str, moment: datetime) -> date:
        return moment.astimezone(self.zones[market]).date()

    async def _write_audits(
        self, connection: asyncpg.Connection, rng: np.random.Generator, decisions: list[Any]
    ) -> None:
        audited = np.flatnonzero(rng.random(len(decisions)) < self.audit_share).tolist()
        n = len(audited)
        if not n:
            return
        draws = rng.random((n, 8)).tolist()
        delays = np.clip(rng.lognormal(10.8, 0.8, size=n), 600, 6 * 86_400).tolist()
        accuracy = self.moderator_accuracy
        moderator_index = {m: i for i, m in enumerate(self.moderator_ids)}
        audits: list[tuple[Any, ...]] = []
        verdicts: list[tuple[Any, ...]] = []
        disagreements: list[tuple[Any, ...]] = []
        changes: list[tuple[Any, ...]] = []
        for k, index in enumerate(audited):
            row = decisions[index]
            decision_id, market, queue, moderator = row[0], row[6], row[5], row[8]
            action, labels, decided_at = row[9], row[10], row[11]
            draw = draws[k]
            day = self._local_day(market, decided_at)
            auditors = self.auditors[market]
            auditor = auditors[int(draw[0] * len(auditors))]
            judged_at = min(decided_at + timedelta(seconds=delays[k]), self.as_of)
            judged_at = max(judged_at, decided_at + timedelta(minutes=10))
            sampled_at = decided_at + (judged_at - decided_at) / 3
            claimed_at = judged_at - (judged_at - sampled_at) / 10
            audit_id = _uuid("audit", decision_id)
            verdict_id = _uuid("verdict", decision_id)
            audits.append(
                (
                    audit_id, decision_id, _uuid(f"run-{market}", day.toordinal()),
                    "base" if draw[1] < 0.85 else "boost", market, queue, row[7], moderator,
                    labels, day, "completed", draw[2], auditor, claimed_at, judged_at, False,
                    sampled_at,
                )
            )  # fmt: skip
            incorrect = draw[3] >= accuracy[moderator_index[moderator]]
            expected_action: str | None = None
            expected_labels: list[str] | None = None
            severity = error_type = None
            if incorrect:
                expected_action, expected_labels = self._expected(action, labels, draw[4], draw[5])
                error_type = derive_error_type(action, labels, expected_action, expected_labels)
                severity = SEVERITIES[int(np.searchsorted(np.cumsum(SEVERITY_SHARES), draw[6]))]
            effective = "incorrect" if incorrect else "correct"
            disagreement_row: tuple[Any, ...] | None = None
            if incorrect:
                disagreement_row, history, effective = self._disagreement(
                    audit_id, verdict_id, moderator, auditor, market, judged_at, draw[7]
                )
                disagreements.append(disagreement_row)
                changes.extend(history)
            versions = {code: 1 for code in {*labels, *(expected_labels or [])}}
            verdicts.append(
                (
                    verdict_id, audit_id, decision_id, auditor, moderator, market, queue, day,
                    "incorrect" if incorrect else "correct", effective, expected_action,
                    expected_labels, severity, error_type, orjson.dumps(versions).decode(),
                    judged_at,
                )
            )  # fmt: skip
            self.counts.incorrect += incorrect
            self.counts.effectively_incorrect += effective == "incorrect"
        await connection.copy_records_to_table("audits", columns=AUDIT_COLUMNS, records=audits)
        await connection.copy_records_to_table(
            "verdicts", columns=VERDICT_COLUMNS, records=verdicts
        )
        if disagreements:
            await connection.copy_records_to_table(
                "disagreements", columns=DISAGREEMENT_COLUMNS, records=disagreements
            )
            await connection.copy_records_to_table(
                "disagreement_changes", columns=CHANGE_COLUMNS, records=changes
            )
        self.counts.audits += n
        self.counts.verdicts += n
        self.counts.disagreements += len(disagreements)

    def _expected(
        self, action: str, labels: list[str], pick: float, other: float
    ) -> tuple[str, list[str]]:
        """What the auditor says the decision should have been (never the moderator's own)."""
        policy = self.policy_codes[int(other * len(self.policy_codes))]
        if action == "approve":
            if pick < 0.85:
                return ("remove" if pick < 0.65 else "restrict"), [policy]
            return "escalate", []
        if action == "escalate":
            return ("approve", []) if pick < 0.5 else ("remove", [policy])
        if pick < 0.45:
            return "approve", []
        if pick < 0.70:
            return ("restrict" if action == "remove" else "remove"), labels
        # Same action, other labels.
        replaced = [policy] if policy not in labels else [self.policy_codes[0]]
        if set(replaced) == set(labels):
            replaced = [self.policy_codes[1]]
        return action, replaced

    def _disagreement(
        self,
        audit_id: uuid.UUID,
        verdict_id: uuid.UUID,
        moderator: str,
        auditor: str,
        market: str,
        opened_at: datetime,
        draw: float,
    ) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], str]:
        """The disagreement an incorrect verdict opens, its history, the effective outcome.

        30 % are disputed within the window; of those, 10 % wait for a ruling, 35 % of the
        rest are overturned (the verdict becomes effectively correct), the others upheld.
        Undisputed ones close when the window passes (or stay open while it runs).
        """
        disagreement_id = _uuid("disagreement", audit_id.int)
        deadline = opened_at + DISPUTE_WINDOW
        history: list[tuple[Any, ...]] = [(disagreement_id, None, "open", auditor, None, opened_at)]
        disputed_at = resolved_at = None
        resolved_by = reason = note = None
        effective = "incorrect"
        if draw < 0.30:
            disputed_at = min(opened_at + (deadline - opened_at) * (draw / 0.30) / 2, self.as_of)
            reason = "the label was right for this market"
            history.append((disagreement_id, "open", "disputed", moderator, reason, disputed_at))
            status = "disputed"
            ruling = draw / 0.30
            resolve_at = disputed_at + timedelta(hours=24)
            if ruling >= 0.10 and resolve_at <= self.as_of:
                status = "overturned" if ruling < 0.10 + 0.9 * 0.35 else "upheld"
                resolved_at, resolved_by = resolve_at, f"poc-{market.lower()}"
                note = "ruled on the evidence"
                history.append(
                    (disagreement_id, "disputed", status, resolved_by, note, resolved_at)
                )
                if status == "overturned":
                    effective = "correct"
                    self.counts.overturned += 1
            self.counts.disputed += 1
        elif deadline <= self.as_of:
            status = "closed"
            history.append((disagreement_id, "open", "closed", None, None, deadline))
        else:
            status = "open"
        self.counts.by_status[status] = self.counts.by_status.get(status, 0) + 1
        row = (
            disagreement_id, audit_id, verdict_id, moderator, auditor, market, status, deadline,
            reason, disputed_at, resolved_by, note, resolved_at, opened_at,
        )  # fmt: skip
        return row, history, effective

    async def _write_appeals(
        self, connection: asyncpg.Connection, rng: np.random.Generator, decisions: list[Any]
    ) -> None:
        enforcing = [i for i, row in enumerate(decisions) if row[9] in ("remove", "restrict")]
        picked = rng.random(len(enforcing)) < APPEAL_SHARE
        chosen = [enforcing[i] for i in np.flatnonzero(picked).tolist()]
        if not chosen:
            return
        reversed_ = (rng.random(len(chosen)) < APPEAL_REVERSED_SHARE).tolist()
        delays = rng.uniform(3_600, 10 * 86_400, size=len(chosen)).tolist()
        appeals = []
        for index, was_reversed, delay in zip(chosen, reversed_, delays, strict=True):
            row = decisions[index]
            decided_at = min(row[11] + timedelta(seconds=delay), self.as_of)
            appeals.append(
                (
                    _uuid("appeal", row[0]), SOURCE_ID, f"appeal-{row[0]}", row[3], row[2],
                    row[0], row[8], row[9], "reversed" if was_reversed else "upheld",
                    decided_at, decided_at + timedelta(seconds=5),
                )
            )  # fmt: skip
            self.counts.appeals_reversed += was_reversed
        await connection.copy_records_to_table("appeals", columns=APPEAL_COLUMNS, records=appeals)
        self.counts.appeals += len(appeals)

    async def _finish_phase(self, connection: asyncpg.Connection) -> None:
        """Daily sampling runs as the sampling job leaves them; the id sequence past the ids."""
        # The id sequence continues after the seeded ids (intake may follow).
        sequence = await decision_id_sequence(connection)
        if sequence is not None:
            await connection.execute(
                "SELECT setval($1::regclass, (SELECT max(id) FROM decisions))", sequence
            )
        await connection.execute(
            """
            INSERT INTO sampling_runs (id, day, market, seed, decisions_considered,
                                       audits_created, finished_at, created_at)
            SELECT a.sampling_run_id, a.day, a.market, 'bench', 0, count(*),
                   max(a.created_at), min(a.created_at)
            FROM audits a GROUP BY a.sampling_run_id, a.day, a.market
            ON CONFLICT (id) DO UPDATE SET audits_created = excluded.audits_created,
                finished_at = excluded.finished_at
            """
        )
        # What the sampling job saw: the market day's decisions.
        await connection.execute(
            """
            UPDATE sampling_runs s SET decisions_considered = c.decisions
            FROM (SELECT (d.decided_at AT TIME ZONE m.time_zone)::date AS day, d.market,
                         count(*) AS decisions
                  FROM decisions d JOIN markets m ON m.code = d.market
                  GROUP BY 1, 2) c
            WHERE s.day = c.day AND s.market = c.market
            """
        )

    def local_days(self) -> list[date]:
        """Every market-local day that can hold a decision, in order."""
        first = self.start.date() - timedelta(days=1)
        return [first + timedelta(days=n) for n in range((self.end.date() - first).days + 1)]


async def decision_id_sequence(connection: asyncpg.Connection) -> str | None:
    """The sequence behind ``decisions.id`` (identity, serial or a plain ``nextval`` default)."""
    owned: str | None = await connection.fetchval(
        "SELECT pg_get_serial_sequence('decisions', 'id')"
    )
    if owned is not None:
        return owned
    default: str | None = await connection.fetchval(
        "SELECT column_default FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = 'decisions' AND column_name = 'id'"
    )
    match = re.search(r"nextval\('([^']+)'", default or "")
    return match.group(1) if match else None


async def table_counts(connection: asyncpg.Connection, tables: Sequence[str]) -> dict[str, int]:
    """``count(*)`` of each table (exact)."""
    return {
        table: int(await connection.fetchval(f'SELECT count(*) FROM "{table}"'))  # noqa: S608
        for table in tables
    }
