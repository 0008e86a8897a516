"""The fault suite's load: signed decisions posted without pause, 20 auditors claiming and
judging, sampling runs requested, and a local sink receiving the notifications.

API::

    sink = Sink(delay=0.0)                  # a local HTTP receiver (in this event loop)
    await sink.start(); ... await sink.stop()
    sink.received                           # [Received(path, event_id, attempt, digest, at)]
    sink.in_flight                          # requests being answered right now
    sink.delay = 0.5                        # seconds before each answer (deliveries in flight)

    setup = await provision(stack.api_urls[0], stack.admin_key, sink, auditors=20)
    load = Load(setup, stack.api_urls)      # APIs taken in turn, request by request
    async with load.running():              # intake, auditors and sampling while inside
        await load.wait_for(lambda: load.acknowledged_count > 500)
        ...fault...
    load.acknowledged / load.uncertain      # event ids answered 202 / sent without an answer
    load.refused                            # (status, headers, path) of every non-2xx answer
    load.verdicts / load.uncertain_verdicts # audit id -> outcome acknowledged / unanswered
    load.sampling_jobs                      # ids of the sampling jobs requested (202)
    load.served                             # API base URL -> requests it answered
    load.expected_rejections                # requests refused on purpose (their 422s)

Intake: ``senders`` concurrent senders post single events and batches (1 to
``batch_size``), every ``refuse_every``-th request a batch the API must refuse (an unknown
market: a 422, kept as a rejected batch and announced as ``source.rejected_batch``, so
notifications flow to the sink). A 503 or a lost connection is answered as the README says:
the same request again (after ``Retry-After``, at most 1 s here); its events are uncertain
until a 202 acknowledges them. Auditors judge one audit in ``incorrect_every`` incorrect
(a disagreement, announced as ``disagreement.opened``). Every decision is in DE on
``load.day`` (yesterday, UTC), so every auditor may take every audit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import orjson

from shared.core.signing import sign_payload

SOURCE_NAME = "fault-platform"
CHANNEL_EVENTS = ("source.rejected_batch", "disagreement.opened")
CHANNEL_SECRET = "whsec_fault-suite-channel-secret-0123456789"
MARKET = "DE"
LANGUAGE = "de"
QUEUE = "de-video-standard"


# ------------------------------------------------------------------------------- sink


@dataclass(frozen=True)
class Received:
    """One request the sink got."""

    path: str
    event_id: str
    attempt: str
    digest: str
    at: float


class Sink:
    """A minimal HTTP/1.1 receiver (raw asyncio, keep-alive) answering 200 after ``delay``.

    Records each request's path (one per channel), ``X-Plumbline-Event-Id``,
    ``X-Plumbline-Delivery-Attempt`` and the SHA-256 of its body.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.received: list[Received] = []
        self.in_flight = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    def url(self, path: str) -> str:
        """The sink's URL for ``path`` (``/hooks/<channel>``)."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=256)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 2 else ""
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                body = await reader.readexactly(length) if length else b""
                self.in_flight += 1
                try:
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    self.received.append(
                        Received(
                            path=path,
                            event_id=headers.get("x-plumbline-event-id", ""),
                            attempt=headers.get("x-plumbline-delivery-attempt", ""),
                            digest=hashlib.sha256(body).hexdigest(),
                            at=time.monotonic(),
                        )
                    )
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    await writer.drain()
                finally:
                    self.in_flight -= 1
                if headers.get("connection", "").lower() == "close":
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            with contextlib.suppress(Exception):
                writer.close()


# -------------------------------------------------------------------------- provision


@dataclass(frozen=True)
class Setup:
    """What ``provision`` made: the source, the channels, the auditors' keys."""

    admin_key: str
    source_id: str
    source_name: str
    secret: str
    channels: dict[str, str]  # channel id -> its sink path
    auditor_keys: dict[str, str]  # reviewer id -> key


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def provision(
    api_url: str, admin_key: str, sink: Sink, *, auditors: int = 20, channels: int = 2
) -> Setup:
    """Through the API: a source, ``channels`` webhook channels to the sink (rejected
    batches and disagreements), a sampling plan for DE, ``auditors`` QA auditors (keys and
    DE/de profiles)."""
    async with httpx.AsyncClient(base_url=api_url, timeout=30, headers=_auth(admin_key)) as http:

        async def post(path: str, body: dict[str, Any], expected: int = 201) -> Any:
            response = await http.post(path, json=body)
            assert response.status_code == expected, f"{path}: {response.text}"
            return response.json()

        source = await post("/v1/sources", {"name": SOURCE_NAME})
        made_channels = {}
        for index in range(channels):
            path = f"/hooks/channel-{index}"
            channel = await post(
                "/v1/channels",
                {
                    "name": f"fault sink {index}",
                    "kind": "webhook",
                    "target": sink.url(path),
                    "secret": CHANNEL_SECRET,
                    "language": "en",
                    "events": list(CHANNEL_EVENTS),
                },
            )
            made_channels[channel["id"]] = path
        await post(
            "/v1/sampling-plans",
            {"name": "fault DE", "market": MARKET, "rate": 0.2, "min_per_moderator": 1},
        )
        keys = {}
        for index in range(auditors):
            reviewer = f"fault-auditor-{index:02d}"
            response = await http.put(
                f"/v1/reviewers/{reviewer}", json={"markets": [MARKET], "languages": [LANGUAGE]}
            )
            assert response.status_code in (200, 201), response.text
            key = await post(
                "/v1/api-keys",
                {"name": reviewer, "role": "qa_auditor", "reviewer_id": reviewer},
            )
            keys[reviewer] = key["key"]
    return Setup(
        admin_key=admin_key,
        source_id=source["id"],
        source_name=SOURCE_NAME,
        secret=source["secret"],
        channels=made_channels,
        auditor_keys=keys,
    )


# ------------------------------------------------------------------------------- load


@dataclass(frozen=True)
class Refusal:
    """A non-2xx answer the load got (or status 0: no answer at all)."""

    status: int
    headers: dict[str, str]
    path: str
    at: float
    detail: str = ""


@dataclass
class Load:
    """The generator. Use ``async with load.running():``; read its records afterwards."""

    setup: Setup
    api_urls: list[str]
    senders: int = 3
    batch_size: int = 50
    refuse_every: int = 10
    pause: float = 0.02
    incorrect_every: int = 3
    judging_pause: float = 0.2
    sample_every: float = 5.0
    timeout: float = 20.0
    day: date = field(default_factory=lambda: datetime.now(UTC).date() - timedelta(days=1))
    acknowledged: set[str] = field(default_factory=set)
    uncertain: set[str] = field(default_factory=set)
    refused: list[Refusal] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    expected_rejections: int = 0
    uncertain_rejections: int = 0
    verdicts: dict[str, str] = field(default_factory=dict)
    uncertain_verdicts: set[str] = field(default_factory=set)
    claims: int = 0
    sampling_jobs: list[str] = field(default_factory=list)
    served: Counter[str] = field(default_factory=Counter)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _turn: itertools.count[int] = field(default_factory=itertools.count)
    _numbers: itertools.count[int] = field(default_factory=itertools.count)
    _run: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def acknowledged_count(self) -> int:
        return len(self.acknowledged)

    def _base(self) -> str:
        return self.api_urls[next(self._turn) % len(self.api_urls)]

    def _event(self, *, market: str = MARKET) -> dict[str, Any]:
        n = next(self._numbers)
        minute = n % (8 * 60)
        decided = datetime(self.day.year, self.day.month, self.day.day, 8, tzinfo=UTC)
        return {
            "event_id": f"fault-{self._run}-{n}",
            "content_id": f"content-{n}",
            "content_type": "video",
            "queue": QUEUE,
            "market": market,
            "language": LANGUAGE,
            "moderator_id": f"fault-mod-{n % 40:02d}",
            "action": "remove" if n % 4 else "approve",
            "policy_labels": ["hate_speech"] if n % 4 else [],
            "decided_at": (decided + timedelta(minutes=minute, seconds=n % 60)).isoformat(),
            "handling_time_ms": 1000 + n % 5000,
            "metadata": {},
        }

    def _record(self, response: httpx.Response | None, path: str, detail: str = "") -> None:
        status = 0 if response is None else response.status_code
        self.statuses[status] += 1
        if not 200 <= status < 300:
            headers = {} if response is None else dict(response.headers)
            text = detail if response is None else response.text[:300]
            self.refused.append(Refusal(status, headers, path, time.monotonic(), text))

    async def _send(
        self, http: httpx.AsyncClient, method: str, path: str, **kwargs: Any
    ) -> httpx.Response | None:
        """One request to the next API; None (recorded as status 0) when no answer came."""
        base = self._base()
        try:
            response = await http.request(method, base + path, **kwargs)
        except httpx.HTTPError as exc:
            self._record(None, path, repr(exc))
            return None
        self.served[base] += 1
        self._record(response, path)
        return response

    async def _post_decisions(self, http: httpx.AsyncClient, payload: Any, ids: list[str]) -> int:
        """Post until an answer other than 503 or none; the final status (0: gave up)."""
        body = orjson.dumps(payload)
        for attempt in range(60):
            headers = {
                "Content-Type": "application/json",
                "X-Plumbline-Source": self.setup.source_name,
                "X-Plumbline-Signature": sign_payload(self.setup.secret, body, int(time.time())),
            }
            self.uncertain.update(ids)
            response = await self._send(
                http, "POST", "/v1/webhooks/decisions", content=body, headers=headers
            )
            if response is not None and response.status_code != 503:
                if response.status_code == 202:
                    self.acknowledged.update(ids)
                    self.uncertain.difference_update(ids)
                return response.status_code
            wait = 0.25
            if response is not None:
                with contextlib.suppress(ValueError):
                    wait = min(1.0, float(response.headers.get("retry-after", "0.25")))
            await asyncio.sleep(wait if attempt else 0.1)
            if self._stop.is_set() and attempt >= 10:
                break
        return 0

    async def _intake(self, index: int) -> None:
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            for request in itertools.count():
                if self._stop.is_set():
                    return
                if self.refuse_every and (request * self.senders + index) % self.refuse_every == 0:
                    events = [self._event(), self._event(market="XX")]
                    status = await self._post_decisions(http, {"events": events}, [])
                    if status == 422:
                        self.expected_rejections += 1
                    elif status == 0:
                        self.uncertain_rejections += 1
                elif request % 2:
                    event = self._event()
                    await self._post_decisions(http, event, [event["event_id"]])
                else:
                    size = 1 + (request * 7 + index) % self.batch_size
                    events = [self._event() for _ in range(size)]
                    ids = [event["event_id"] for event in events]
                    await self._post_decisions(http, {"events": events}, ids)
                await asyncio.sleep(self.pause)

    async def _auditor(self, index: int, key: str) -> None:
        async with httpx.AsyncClient(timeout=self.timeout, headers=_auth(key)) as http:
            judged = 0
            while not self._stop.is_set():
                claimed = await self._send(http, "POST", "/v1/audits/claim")
                if claimed is None or claimed.status_code != 200:
                    await asyncio.sleep(0.5)
                    continue
                self.claims += 1
                audit_id = claimed.json()["id"]
                judged += 1
                body: dict[str, Any] = {"outcome": "correct"}
                if (judged + index) % self.incorrect_every == 0:
                    body = {"outcome": "incorrect", "expected_action": "restrict"}
                    body["severity"] = "minor"
                for _ in range(20):
                    self.uncertain_verdicts.add(audit_id)
                    answer = await self._send(
                        http, "POST", f"/v1/audits/{audit_id}/verdict", json=body
                    )
                    if answer is not None and answer.status_code != 503:
                        if 200 <= answer.status_code < 300:
                            self.verdicts[audit_id] = body["outcome"]
                            self.uncertain_verdicts.discard(audit_id)
                        break
                    await asyncio.sleep(0.5)
                await asyncio.sleep(self.judging_pause)

    async def sample(self, http: httpx.AsyncClient | None = None) -> str | None:
        """Request a sampling run of ``day`` in DE; its job id (None when refused)."""
        async with contextlib.AsyncExitStack() as stack:
            if http is None:
                http = await stack.enter_async_context(
                    httpx.AsyncClient(timeout=self.timeout, headers=_auth(self.setup.admin_key))
                )
            response = await self._send(
                http,
                "POST",
                "/v1/audits/sample",
                json={"day": self.day.isoformat(), "market": MARKET},
            )
            if response is None or response.status_code != 202:
                return None
            job_id: str = response.json()["job_id"]
            self.sampling_jobs.append(job_id)
            return job_id

    async def _sampler(self) -> None:
        async with httpx.AsyncClient(
            timeout=self.timeout, headers=_auth(self.setup.admin_key)
        ) as http:
            while not self._stop.is_set():
                await self.sample(http)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.sample_every)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Load]:
        """Intake, auditors and the sampler run while the block runs; on leaving they finish
        the request at hand (a 503 retried a few more times) and stop."""
        self._stop.clear()
        tasks = [asyncio.create_task(self._intake(index)) for index in range(self.senders)]
        tasks += [
            asyncio.create_task(self._auditor(index, key))
            for index, key in enumerate(self.setup.auditor_keys.values())
        ]
        if self.sample_every:
            tasks.append(asyncio.create_task(self._sampler()))
        try:
            yield self
        finally:
            self._stop.set()
            done, pending = await asyncio.wait(tasks, timeout=self.timeout * 3 + 15)
            for task in pending:
                task.cancel()
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]

    async def wait_for(self, condition: Callable[[], bool], within: float = 60.0) -> None:
        """Until ``condition()`` holds (checked every 50 ms); fails after ``within`` s."""
        deadline = time.monotonic() + within
        while not condition():
            assert time.monotonic() < deadline, f"not reached in {within} s: {self.summary()}"
            await asyncio.sleep(0.05)

    def summary(self) -> str:
        """One line: what the load did."""
        return (
            f"acknowledged {len(self.acknowledged)} events ({len(self.uncertain)} uncertain), "
            f"statuses {dict(self.statuses)}, {self.expected_rejections} refused on purpose, "
            f"{self.claims} claims, {len(self.verdicts)} verdicts "
            f"({len(self.uncertain_verdicts)} uncertain), {len(self.sampling_jobs)} sampling jobs"
        )
