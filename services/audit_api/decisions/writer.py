"""The decision writer: stores accepted events durably, coalescing concurrent requests.

Under load, many webhook requests arrive at once, each with a few events. Writing each in its
own transaction makes the commit (and its WAL flush) the cost of every request. The writer
instead takes every request waiting at the moment it is free and stores them in one
transaction (group commit), then answers each request with its own counts. A request is
answered only after that commit: nothing is acknowledged that is not durable.

One request's data must never fail another's. Validation refuses what PostgreSQL would (a NUL
character, a time outside the accepted window) before a request gets here; should a grouped
statement still fail on its data, its requests are written again in halves until the one
that caused it stands alone, and only that one gets a 422. A fault of ours (the database
unreachable) fails the requests not yet committed with a 503, and their senders retry them,
idempotently.

Each transaction also records its ``IntakeBatch``, the durable work item from which the report
worker counts its decisions into the daily intake rollup exactly once; one outbox job per
interval wakes the worker for all batches written since the last one.

Under load that interval is most of PostgreSQL's cost per event: a rollup job upserts one
``quality_rollups`` row per (day, market, queue, moderator, policy) its batches touch, and
each upsert writes a new row version with five index entries. A job every 0.2 s at 20,000
events/s met about one row for every two events (71 µs of PostgreSQL CPU per event, against
27 µs for storing the event); a job every 2 s meets the same rows many times over and
collapses them (18 µs). A job also has a cost of its own, whatever it counts: it recomputes
the day rollups of the days it touched from all their rows, and the report worker and relay
handle its message. Jobs of 120 events cost 180 µs of PostgreSQL CPU per event (about 80 of
it the day rollups), more than storing the event; single events at a few hundred a second
made such jobs every 0.2 s. So the interval is 0.2 s while intake is quiet, and 2 s once a
job has counted ``ROLLUP_BUSY_EVENTS`` or more (500 events/s over the quiet interval); under
load ``ROLLUP_BATCHES_AT_ONCE`` waiting batches still start a job sooner. With 100 instead of
1,000 (and the rollup's HOT updates, migration 0015), single events cost PostgreSQL 128 µs
each instead of 185-206, and the rest of the stack 59-87 instead of 147-185 (benchmark A/B,
CPU per event). Reports lose nothing by it: each applies the pending batches before it reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from dataclasses import dataclass

import asyncpg
import orjson

from services.audit_api.metrics import DECISIONS_ACCEPTED, DECISIONS_DUPLICATE, INTAKE_FLUSH_EVENTS
from shared.core.errors import ServiceUnavailable
from shared.core.errors import UnprocessableEntity as Unprocessable
from shared.core.observability import request_id_var
from shared.core.outbox import OUTBOX_CHANNEL
from shared.jobs import ApplyIntakeRollup
from shared.reference import market_rows
from shared.schemas.decisions import DecisionEvent, IntakeResult

logger = logging.getLogger(__name__)

# One statement stores one source's share of a flush, and is its own transaction: it
# registers the markets, queues, policy codes and moderators it names (first reference
# creates them, and a moderator gains the markets it decides in; sorted, so concurrent
# statements cannot deadlock), inserts the idempotency keys that are new and then their
# decisions (event ids are distinct and sorted: the writer keeps each one's first
# occurrence), and records their IntakeBatch. The events travel as one JSON array per column
# (store_arguments), zipped back into rows by ROWS FROM: json_to_recordset, which took one
# JSON document of objects, builds a hash table of every object's keys and was 13.5 µs of
# PostgreSQL's CPU per event at 1,000 events a statement, these arrays 2.9; and asyncpg
# encodes a text or timestamp array element by element, slower than orjson writes the
# JSON (about 1 and 3.5 µs per event and column against 0.2).
#
# It comes in two forms. STORE_NEW_DECISIONS inserts every key and decision plainly and
# fails whole (a unique violation on the key) if a key is stored already; STORE_DECISIONS
# skips those keys (ON CONFLICT DO NOTHING) and stores the decisions of the others. The
# writer runs the first and, only when it fails on a key, the second: both store exactly
# the events whose key is new. Nearly every statement meets no duplicate, and the plain form
# costs PostgreSQL a third less CPU per event at 1,000 events a statement: ON CONFLICT probes
# the key's index once more before each insert and confirms each speculative insert, and
# the decisions must then be joined to the keys that were new and returned to be counted.
# One that meets a duplicate costs more (the failed statement and the second: 1.8 times one
# statement when only its last key is stored, 1.5 for a batch sent again whole), so a source
# whose statement met a stored key skips the plain form until one meets none.
_REGISTER_AND_READ_EVENTS = """
WITH markets AS (
    INSERT INTO markets (code, default_language, time_zone)
    SELECT * FROM unnest($4::text[], $5::text[], $6::text[]) ON CONFLICT DO NOTHING
), queues AS (
    INSERT INTO queues (name, market_code)
    SELECT * FROM unnest($7::text[], $8::text[]) ON CONFLICT DO NOTHING
), policies AS (
    INSERT INTO policies (code) SELECT unnest($9::text[]) ON CONFLICT DO NOTHING
), decided_in AS (
    SELECT id, array_agg(market ORDER BY market)::varchar(2)[] AS markets
    FROM unnest($10::text[], $11::text[]) AS pair(id, market) GROUP BY id
), reviewers AS (
    -- A moderator works in the markets it decides in (quizzes, pass rates and scoped views
    -- go by a reviewer's markets). Only a new reviewer or a new market is written: the rest,
    -- nearly all, cost an index probe and take no lock.
    INSERT INTO reviewers (id, markets)
    SELECT d.id, d.markets FROM decided_in AS d
    WHERE NOT EXISTS (SELECT FROM reviewers AS r WHERE r.id = d.id AND r.markets @> d.markets)
    ORDER BY d.id
    ON CONFLICT (id) DO UPDATE
    SET markets = ARRAY(
        SELECT DISTINCT m FROM unnest(reviewers.markets || excluded.markets) AS m ORDER BY m
    )
    WHERE NOT reviewers.markets @> excluded.markets
), events AS (
    -- Each event's decision id is drawn here, in event id order (a duplicate's goes unused).
    SELECT nextval('decisions_id_seq') AS id, event_id, content_id, content_type, queue,
           market, language, moderator_id, action, policy_labels::text[] AS policy_labels,
           decided_at::timestamptz AS decided_at, handling_time_ms::int8 AS handling_time_ms,
           metadata::jsonb AS metadata
    FROM ROWS FROM (
        json_array_elements_text($2::json), json_array_elements_text($12::json),
        json_array_elements_text($13::json), json_array_elements_text($14::json),
        json_array_elements_text($15::json), json_array_elements_text($16::json),
        json_array_elements_text($17::json), json_array_elements_text($18::json),
        json_array_elements_text($19::json), json_array_elements_text($20::json),
        json_array_elements_text($21::json), json_array_elements($22::json)
    ) AS e(event_id, content_id, content_type, queue, market, language, moderator_id, action,
           policy_labels, decided_at, handling_time_ms, metadata)
)"""
# The idempotency key has a table of its own: decisions is partitioned by decided_at and
# cannot hold a unique (source_id, event_id). A key already stored, or being stored by a
# concurrent statement that then commits, is a duplicate.
_INSERT_KEYS = """
    INSERT INTO decision_event_keys (source_id, event_id, decision_id, decided_at)
    SELECT $1, e.event_id, e.id, e.decided_at FROM events AS e"""
_INSERT_DECISIONS = """
    INSERT INTO decisions (id, source_id, event_id, content_id, content_type, queue, market,
                           language, moderator_id, action, policy_labels, decided_at,
                           handling_time_ms, metadata, intake_batch_id)
    SELECT e.id, $1, e.event_id, e.content_id, e.content_type, e.queue, e.market,
           e.language, e.moderator_id, e.action, e.policy_labels, e.decided_at,
           e.handling_time_ms, e.metadata, $3"""
STORE_NEW_DECISIONS = f"""{_REGISTER_AND_READ_EVENTS}, keys AS ({_INSERT_KEYS}
), stored AS ({_INSERT_DECISIONS}
    FROM events AS e
), batch AS (
    INSERT INTO intake_batches (batch_id, first_decision_id, last_decision_id, decisions)
    SELECT $3, min(id), max(id), count(*) FROM events HAVING count(*) > 0
)
SELECT count(*) FROM events
"""  # noqa: S608 (constant parts, no input)
STORE_DECISIONS = f"""{_REGISTER_AND_READ_EVENTS}, keys AS ({_INSERT_KEYS}
    ON CONFLICT DO NOTHING
    RETURNING decision_id
), stored AS ({_INSERT_DECISIONS}
    FROM keys AS k JOIN events AS e ON e.id = k.decision_id
    RETURNING id, event_id
), batch AS (
    INSERT INTO intake_batches (batch_id, first_decision_id, last_decision_id, decisions)
    SELECT $3, min(id), max(id), count(*) FROM stored HAVING count(*) > 0
)
SELECT event_id FROM stored
"""  # noqa: S608 (constant parts, no input)
# The idempotency key's unique index: the one STORE_NEW_DECISIONS fails on for a duplicate.
_KEY_CONSTRAINT = "pk_decision_event_keys"
_INSERT_ROLLUP_JOB = f"""
WITH job AS (
    INSERT INTO outbox_jobs (id, queue_name, function, payload, request_id)
    VALUES ($1, $2, $3, $4::jsonb, $5)
    RETURNING id
)
SELECT pg_notify('{OUTBOX_CHANNEL}', '') FROM job
"""  # noqa: S608 (a constant channel name, no input)
# Request ids kept on a rollup job, so its logs lead back to the requests that caused it.
_MAX_REQUEST_IDS = 50
# A rollup job that counts this many events or more makes the next wait the busy interval:
# 100 events in the quiet interval (0.2 s) is 500 events/s, where the cost a job has of its
# own (see the module docstring) outweighs a fresher rollup.
ROLLUP_BUSY_EVENTS = 100
# A rollup job is queued at once when this many batches wait, whatever the interval: the job
# claims at most MAX_BATCHES_PER_RUN (500) of them, with room for those written before it
# runs, and small flushes of single events write a few hundred batches a second.
ROLLUP_BATCHES_AT_ONCE = 400


@dataclass(slots=True)
class _PendingWrite:
    source_id: uuid.UUID
    events: list[DecisionEvent]
    request_id: str | None
    future: asyncio.Future[IntakeResult]
    accepted: int = 0


class DecisionWriter:
    """Coalesces concurrent intake requests into few transactions (see module docstring)."""

    def __init__(
        self,
        dsn: str,
        *,
        max_events_per_flush: int = 2000,
        flushers: int = 3,
        rollup_interval_seconds: float = 0.2,
        busy_rollup_interval_seconds: float = 2.0,
    ) -> None:
        self._dsn = dsn
        self._max_events = max_events_per_flush
        self._flushers = flushers
        self._pending: list[_PendingWrite] = []
        self._wakeup = asyncio.Condition()
        self._pool: asyncpg.Pool | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._rollup_interval = rollup_interval_seconds
        self._busy_rollup_interval = busy_rollup_interval_seconds
        self._unannounced: list[uuid.UUID] = []
        self._unannounced_events = 0
        # True while a rollup job is being queued (its batches are no longer unannounced).
        self._announcing = False
        self._unannounced_request_ids: list[str] = []
        self._batches_written = asyncio.Event()
        # Set to end the wait between two rollup jobs early (many batches, or a quiesce).
        self._rollup_due = asyncio.Event()
        self._flushing = 0
        # Sources whose last statement met a stored key: theirs skip the plain insert (see
        # _store) until one meets none.
        self._resending_sources: set[uuid.UUID] = set()

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=1,
            max_size=self._flushers + 1,
            server_settings={"application_name": "plumbline-intake"},
            reset=_keep_session,
        )
        self._tasks = [asyncio.create_task(self._run()) for _ in range(self._flushers)]
        self._tasks.append(asyncio.create_task(self._queue_rollups()))

    async def quiesce(self, *, seconds: float = 5.0) -> None:
        """Wait until every accepted write is committed and its rollup job queued."""
        deadline = asyncio.get_running_loop().time() + seconds
        while self._pending or self._flushing or self._unannounced or self._announcing:
            self._rollup_due.set()
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("intake writer did not settle")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        # Graceful: requests already handed over are written and their rollup queued.
        with contextlib.suppress(TimeoutError):
            await self.quiesce()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._pool is not None:
            await self._pool.close()
        for pending in self._pending:
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("intake writer stopped"))

    async def write(self, *, source_id: uuid.UUID, events: list[DecisionEvent]) -> IntakeResult:
        """Store ``events`` of one request; returns once they are committed."""
        future: asyncio.Future[IntakeResult] = asyncio.get_running_loop().create_future()
        async with self._wakeup:
            self._pending.append(_PendingWrite(source_id, events, request_id_var.get(), future))
            self._wakeup.notify()
        return await future

    def _announce(self, batch_id: uuid.UUID, events: int, request_ids: list[str]) -> None:
        self._unannounced.append(batch_id)
        self._unannounced_events += events
        room = _MAX_REQUEST_IDS - len(self._unannounced_request_ids)
        self._unannounced_request_ids.extend(request_ids[: max(room, 0)])
        self._batches_written.set()
        if len(self._unannounced) >= ROLLUP_BATCHES_AT_ONCE:
            self._rollup_due.set()

    async def _queue_rollups(self) -> None:
        """Queue one rollup job for the batches written since the last, at most every interval
        (the busy one after a job of many events; sooner once ``ROLLUP_BATCHES_AT_ONCE``
        batches wait, or when quiescing).

        The batches themselves are durable work items (``intake_batches``): a rollup job
        applies every pending batch, and the report worker's sweep applies any whose job never
        came (this process died first), so a job per transaction would only add load. The
        first batch after a quiet interval is announced at once; under load, one job takes
        an interval's batches together (see the module docstring for why that matters).
        """
        while True:
            await self._batches_written.wait()
            self._batches_written.clear()
            self._rollup_due.clear()
            batch_ids, self._unannounced = self._unannounced, []
            events, self._unannounced_events = self._unannounced_events, 0
            self._announcing = True
            request_ids, self._unannounced_request_ids = self._unannounced_request_ids, []
            job = ApplyIntakeRollup(batch_id=batch_ids[-1])
            try:
                assert self._pool is not None
                async with self._pool.acquire() as connection:
                    await connection.execute(
                        _INSERT_ROLLUP_JOB,
                        uuid.uuid4(),
                        job.queue,
                        job.function,
                        job.model_dump_json(),
                        ",".join(request_ids)[:64] if request_ids else None,
                    )
            except Exception as exc:
                logger.warning("could not queue the intake rollup", extra={"error": repr(exc)})
                self._unannounced[:0] = batch_ids
                self._unannounced_events += events
                self._batches_written.set()
            finally:
                self._announcing = False
            busy = events >= ROLLUP_BUSY_EVENTS
            interval = self._busy_rollup_interval if busy else self._rollup_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rollup_due.wait(), interval)

    def _take(self) -> list[_PendingWrite]:
        taken: list[_PendingWrite] = []
        count = 0
        while self._pending and (
            not taken or count + len(self._pending[0].events) <= self._max_events
        ):
            pending = self._pending.pop(0)
            taken.append(pending)
            count += len(pending.events)
        return taken

    async def _run(self) -> None:
        while True:
            async with self._wakeup:
                await self._wakeup.wait_for(lambda: bool(self._pending))
                batch = self._take()
                self._flushing += 1
            try:
                await self._flush(batch)
            except Exception as exc:
                # A fault of ours (the database unreachable, say): whatever is not committed
                # yet may be sent again as is.
                logger.warning("intake transaction failed", extra={"error": repr(exc)})
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(
                            ServiceUnavailable(
                                "decisions could not be stored; nothing was accepted, send again",
                                headers={"Retry-After": "1"},
                            )
                        )
            finally:
                self._flushing -= 1

    async def _flush(self, batch: list[_PendingWrite]) -> None:
        """Store ``batch``, one statement per source, answering each request once committed."""
        assert self._pool is not None
        by_source: dict[uuid.UUID, list[_PendingWrite]] = {}
        for pending in batch:
            by_source.setdefault(pending.source_id, []).append(pending)
        async with self._pool.acquire() as connection:
            # Sorted, so that concurrent statements (other flushers, other API processes) lock
            # keys in one order and cannot deadlock.
            for source_id in sorted(by_source):
                await self._store_isolating_bad_data(connection, source_id, by_source[source_id])

    async def _store_isolating_bad_data(
        self, connection: asyncpg.Connection, source_id: uuid.UUID, requests: list[_PendingWrite]
    ) -> None:
        """Store ``requests`` together; if their data fails the statement, in halves.

        Bisecting finds the request at fault in a few statements, while its neighbours are
        stored and answered as usual. A request that fails on its own gets the 422.
        """
        try:
            await self._store(connection, source_id, requests)
        except _DATA_ERRORS as exc:
            if len(requests) > 1:
                middle = len(requests) // 2
                await self._store_isolating_bad_data(connection, source_id, requests[:middle])
                await self._store_isolating_bad_data(connection, source_id, requests[middle:])
                return
            [pending] = requests
            logger.warning(
                "intake request refused by the database",
                extra={"error": repr(exc), "request_id": pending.request_id},
            )
            if not pending.future.done():
                message = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                pending.future.set_exception(
                    Unprocessable(
                        f"the events cannot be stored: {message}",
                        errors=[{"loc": [], "msg": message}],
                    )
                )

    async def _store(
        self, connection: asyncpg.Connection, source_id: uuid.UUID, requests: list[_PendingWrite]
    ) -> None:
        """One statement (one transaction) for ``requests`` of one source; answers them."""
        # The first occurrence of each event_id is the one inserted; later ones, in this
        # statement or in a request of its own, are duplicates by definition.
        group: dict[str, tuple[DecisionEvent, _PendingWrite]] = {}
        for pending in requests:
            for event in pending.events:
                group.setdefault(event.event_id, (event, pending))
        events = [group[event_id][0] for event_id in sorted(group)]
        batch_id = uuid.uuid4()
        arguments = store_arguments(source_id=source_id, batch_id=batch_id, events=events)
        stored: list[str] | None = None  # the event ids stored
        if source_id not in self._resending_sources:
            try:
                await connection.fetchval(STORE_NEW_DECISIONS, *arguments)
                stored = list(group)
            except asyncpg.UniqueViolationError as exc:
                if exc.constraint_name != _KEY_CONSTRAINT:
                    raise
        if stored is None:
            # An event is stored already (the plain statement stored nothing), or this source
            # resent events lately (see STORE_NEW_DECISIONS).
            records = await connection.fetch(STORE_DECISIONS, *arguments)
            stored = [record["event_id"] for record in records]
            if len(stored) < len(events):
                self._resending_sources.add(source_id)
            else:
                self._resending_sources.discard(source_id)
        for event_id in stored:
            group[event_id][1].accepted += 1
        if stored:
            self._announce(batch_id, len(stored), [p.request_id for p in requests if p.request_id])
        received = sum(len(pending.events) for pending in requests)
        INTAKE_FLUSH_EVENTS.observe(received)
        DECISIONS_ACCEPTED.inc(len(stored))
        DECISIONS_DUPLICATE.inc(received - len(stored))
        for pending in requests:
            if not pending.future.done():
                pending.future.set_result(
                    IntakeResult(
                        accepted=pending.accepted, duplicates=len(pending.events) - pending.accepted
                    )
                )


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Release a writer connection to the pool as it is, without asyncpg's reset query.

    By default every release runs ``SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL``: one more round trip and four more statements for PostgreSQL per flush, about
    a tenth of PostgreSQL's work for a flush of a few single events (py-spy: 4 % of the API's
    CPU under single-event load). The writer's statements change no session state (no SET,
    LISTEN, advisory lock or cursor), and asyncpg still rolls back a transaction left open.
    """


# A statement that fails on what its events hold, not on the database being unavailable: the
# SQLSTATE classes 22 (data exception: text with a NUL, a time out of range...) and 23
# (integrity constraint violation), and an event that cannot be encoded to begin with.
_DATA_ERRORS = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    orjson.JSONEncodeError,
)

# STORE_DECISIONS's text columns after event_id, in the order of its parameters $12 to $18.
_TEXT_COLUMNS = (
    "content_id",
    "content_type",
    "queue",
    "market",
    "language",
    "moderator_id",
    "action",
)


def store_arguments(
    *, source_id: uuid.UUID, batch_id: uuid.UUID, events: list[DecisionEvent]
) -> list[object]:
    """STORE_DECISIONS's parameters for ``events`` of one source (distinct event ids, sorted):
    the reference columns, and the events as one JSON array per column."""
    dumps = orjson.dumps
    return [
        source_id,
        dumps([event.event_id for event in events]).decode(),
        batch_id,
        *reference_columns(events),
        *(dumps([getattr(event, name) for event in events]).decode() for name in _TEXT_COLUMNS),
        dumps([_array_literal(event.policy_labels) for event in events]).decode(),
        # orjson writes an aware datetime in RFC 3339 with its offset, which PostgreSQL reads.
        dumps([event.decided_at for event in events]).decode(),
        dumps([event.handling_time_ms for event in events]).decode(),
        dumps([event.metadata for event in events]).decode(),
    ]


def _array_literal(values: list[str]) -> str:
    """``values`` as a PostgreSQL array literal, each element quoted (so that none reads as
    NULL) and escaped: one text per event, where a nested JSON array would need a subquery."""
    if not values:
        return "{}"
    quoted = (value.replace("\\", "\\\\").replace('"', '\\"') for value in values)
    return '{"' + '","'.join(quoted) + '"}'


def reference_columns(events: list[DecisionEvent]) -> list[list[str]]:
    """Sorted, distinct markets, queues (with their market), policy codes, and moderators
    paired with each market they decided in (two columns).
    """
    # One pass over the events: four passes were 7.6 % of the API's CPU for 1,000-event
    # batches (py-spy), one takes 40 % less. Every market is some moderator's, so the
    # markets come from the pairs.
    queues: dict[str, str] = {}
    decided_in: set[tuple[str, str]] = set()
    labels: set[str] = set()
    for event in events:
        market = event.market
        queues.setdefault(event.queue, market)
        decided_in.add((event.moderator_id, market))
        if event.policy_labels:
            labels.update(event.policy_labels)
    queue_names = sorted(queues)
    pairs = sorted(decided_in)
    return [
        *market_rows(market for _, market in pairs),
        queue_names,
        [queues[name] for name in queue_names],
        sorted(labels),
        [moderator for moderator, _ in pairs],
        [market for _, market in pairs],
    ]
