"""``plumbline seed-demo``: a realistic week of QA work, through the real API only.

It registers a source and posts signed batches to ``POST /v1/webhooks/decisions`` exactly as
a moderation platform would, then does what a QA team does with them: reviewer profiles with
markets and languages, sampling plans, sampling each day (``POST /v1/audits/sample``, waiting
for the job), auditors claiming and judging every audit, a moderator disputing an incorrect
verdict and a policy POC ruling on it, a closed calibration session, a quiz with attempts and
a training plan. Every report has data at once. The policy POC's side: a published policy
update for DE and AT (English, with a German translation) that some reviewers have
acknowledged, and two policy questions, one answered and one still open.

The decisions are deterministic for a given seed and end day: moderators with a home market,
shifts in the market's time zone, handling times drawn per content type, and an action and
policy mix close to a real operation. Running it again adds nothing: event ids repeat (the
API counts them as duplicates), profiles are PUT, plans, the calibration, the quiz and the
training plan are looked up by name first (the policy update by title, the questions by
asker and text), and judged audits are not handed out again. The
keys it needs for auditors, moderators and the policy POC are created for the run and revoked
at its end.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson

from shared.core.signing import SIGNATURE_HEADER, SOURCE_HEADER, sign_payload

MAX_BATCH = 1000


@dataclass(frozen=True)
class Market:
    code: str
    time_zone: str
    share: float
    # (language, weight): Switzerland reviews German, French and Italian content.
    languages: tuple[tuple[str, float], ...]


MARKETS = (
    Market("DE", "Europe/Berlin", 0.50, (("de", 0.93), ("en", 0.07))),
    Market("AT", "Europe/Vienna", 0.15, (("de", 0.95), ("en", 0.05))),
    Market("CH", "Europe/Zurich", 0.15, (("de", 0.62), ("fr", 0.28), ("it", 0.10))),
    Market("FR", "Europe/Paris", 0.20, (("fr", 0.94), ("en", 0.06))),
)

# Content type: (weight, median handling seconds, log-normal sigma).
CONTENT_TYPES: dict[str, tuple[float, float, float]] = {
    "video": (0.38, 48.0, 0.55),
    "image": (0.27, 9.0, 0.50),
    "comment": (0.20, 7.0, 0.45),
    "text": (0.10, 14.0, 0.50),
    "live": (0.05, 75.0, 0.60),
}

# Policy code: relative frequency among enforced items.
POLICIES: dict[str, float] = {
    "spam": 0.26,
    "harassment": 0.17,
    "hate_speech": 0.14,
    "nudity": 0.12,
    "violent_graphic": 0.09,
    "misinformation": 0.08,
    "self_harm": 0.04,
    "dangerous_organizations": 0.03,
    "child_safety": 0.02,
    "ip_infringement": 0.05,
}

ACTIONS: dict[str, float] = {"approve": 0.56, "remove": 0.29, "restrict": 0.09, "escalate": 0.06}

# Shift name: local start hour; shifts are 8 hours.
SHIFTS = {"early": 6, "late": 14, "night": 22}


@dataclass(frozen=True)
class SeedOptions:
    """What to seed and where."""

    api_url: str
    admin_key: str
    days: int = 7
    moderators: int = 50
    seed: int = 7
    source_name: str = "demo-platform"
    decisions_per_shift: int = 120
    batch_size: int = MAX_BATCH
    # The seeded days end at the start of this day (UTC); default: today.
    end: datetime | None = None
    timeout_seconds: float = 60.0
    # Share of audits the demo auditors judge incorrect.
    error_rate: float = 0.08
    # How long to wait for one sampling job.
    job_timeout_seconds: float = 120.0
    # Only the source and the decisions, none of the QA work.
    decisions_only: bool = False


@dataclass
class SeedSummary:
    """What ``seed_demo`` sent and what the API answered."""

    source_name: str
    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    batches: int = 0
    reviewers: int = 0
    plans_created: int = 0
    days_sampled: int = 0
    audits_judged: int = 0
    judged_incorrect: int = 0
    disputes_ruled: int = 0
    calibration_created: bool = False
    quiz_created: bool = False
    training_plan_created: bool = False
    policy_update_published: bool = False
    acknowledgements: int = 0
    policy_questions_asked: int = 0


@dataclass(frozen=True)
class Moderator:
    moderator_id: str
    market: Market
    shift: str
    content_types: tuple[str, ...]
    # Above 1: slower than the median; error-prone moderators also over-remove a little.
    speed: float
    remove_bias: float
    work_days: frozenset[int] = field(default_factory=frozenset)


class SeedError(RuntimeError):
    """The API refused a request of the seeding, or could not be reached."""


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def build_moderators(rng: random.Random, count: int) -> list[Moderator]:
    """``count`` moderators spread over the markets, each with a shift and specialisation."""
    moderators = []
    market_weights = {market.code: market.share for market in MARKETS}
    by_code = {market.code: market for market in MARKETS}
    for number in range(1, count + 1):
        market = by_code[_pick(rng, market_weights)]
        shift = _pick(rng, {"early": 0.45, "late": 0.40, "night": 0.15})
        # Most moderators are trained on two or three content types, not all of them.
        types = rng.sample(list(CONTENT_TYPES), k=rng.choice((2, 3, 3, 4)))
        # Five working days out of seven, staggered so weekends are covered.
        off = rng.randrange(7)
        work_days = frozenset(day for day in range(7) if day not in (off, (off + 1) % 7))
        moderators.append(
            Moderator(
                moderator_id=f"mod-{market.code.lower()}-{number:03d}",
                market=market,
                shift=shift,
                content_types=tuple(sorted(types)),
                speed=rng.lognormvariate(0.0, 0.25),
                remove_bias=rng.gauss(0.0, 0.04),
                work_days=work_days,
            )
        )
    return moderators


def _queue(market: Market, content_type: str, priority: bool) -> str:
    # Live streams and priority escalations go to their own queues, the rest by type.
    tier = "priority" if priority or content_type == "live" else "standard"
    return f"{market.code.lower()}-{content_type}-{tier}"


def _decision(
    rng: random.Random, moderator: Moderator, decided_at: datetime, event_id: str
) -> dict[str, Any]:
    content_type = rng.choice(moderator.content_types)
    _, median_seconds, sigma = CONTENT_TYPES[content_type]
    actions = dict(ACTIONS)
    actions["remove"] = max(0.05, actions["remove"] + moderator.remove_bias)
    action = _pick(rng, actions)
    labels: list[str] = []
    if action != "approve":
        labels.append(_pick(rng, POLICIES))
        if rng.random() < 0.12:  # some items break two policies at once
            second = _pick(rng, POLICIES)
            if second not in labels:
                labels.append(second)
    languages = dict(moderator.market.languages)
    seconds = rng.lognormvariate(math.log(median_seconds * moderator.speed), sigma)
    if action == "escalate":
        seconds *= 1.6  # writing up an escalation takes longer
    return {
        "event_id": event_id,
        "content_id": f"{content_type[:3]}-{rng.getrandbits(48):012x}",
        "content_type": content_type,
        "queue": _queue(moderator.market, content_type, priority=rng.random() < 0.08),
        "market": moderator.market.code,
        "language": _pick(rng, languages),
        "moderator_id": moderator.moderator_id,
        "action": action,
        "policy_labels": labels,
        "decided_at": decided_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "handling_time_ms": round(seconds * 1000),
        "metadata": {"demo": True, "shift": moderator.shift},
    }


def generate_decisions(
    *, seed: int, days: int, moderators: int, decisions_per_shift: int, end: datetime
) -> Iterator[dict[str, Any]]:
    """Decision events for ``days`` days before ``end``, in time order per shift.

    Deterministic: the same arguments always give the same events (ids included).
    """
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    people = build_moderators(rng, moderators)
    first_day = (end - timedelta(days=days)).date()
    counter = 0
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        for moderator in people:
            if day.weekday() not in moderator.work_days:
                continue
            zone = ZoneInfo(moderator.market.time_zone)
            shift_start = datetime(
                day.year, day.month, day.day, SHIFTS[moderator.shift], tzinfo=zone
            )
            # Busy and slow shifts: volume varies by about 20 % around the plan.
            planned = max(1, round(rng.gauss(decisions_per_shift, decisions_per_shift * 0.2)))
            # Spread over the 7 working hours of an 8-hour shift (one hour of breaks).
            offsets = sorted(rng.uniform(0, 7 * 3600) for _ in range(planned))
            for seconds in offsets:
                decided_at = shift_start + timedelta(seconds=seconds)
                if decided_at >= end:
                    continue  # a night shift of the last day runs past the seeded range
                counter += 1
                yield _decision(rng, moderator, decided_at, f"demo-{seed}-{counter:07d}")


def _batches(events: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)
    return str(body)


def create_source(client: httpx.Client, admin_key: str, name: str) -> tuple[str, str]:
    """Register the demo source; when it exists already, rotate its secret (it is the demo's).

    Returns (name, secret). Reusing the source keeps a second run's events duplicates of the
    first's (idempotency is per source and event id) instead of a second copy of the week.
    """
    response = client.post(
        "/v1/sources", json={"name": name}, headers={"Authorization": f"Bearer {admin_key}"}
    )
    if response.status_code == httpx.codes.CREATED:
        created = response.json()
        return str(created["name"]), str(created["secret"])
    if response.status_code != httpx.codes.CONFLICT:
        raise SeedError(f"POST /v1/sources: {response.status_code} {_problem(response)}")
    api = DemoApi(client)
    existing = next(
        (source for source in api.list_all("/v1/sources", admin_key) if source["name"] == name),
        None,
    )
    if existing is None:
        raise SeedError(f"source {name!r} exists but is not listed")
    rotated = api.call(
        "POST",
        f"/v1/sources/{existing['id']}/rotate-secret",
        admin_key,
        json={"grace_period_seconds": 0},
    )
    return name, str(rotated["secret"])


def post_batch(
    client: httpx.Client, source: str, secret: str, events: list[dict[str, Any]]
) -> tuple[int, int]:
    """Sign and post one batch; returns (accepted, duplicates)."""
    body = orjson.dumps({"events": events})
    headers = {
        "Content-Type": "application/json",
        SOURCE_HEADER: source,
        SIGNATURE_HEADER: sign_payload(secret, body, int(time.time())),
    }
    response = client.post("/v1/webhooks/decisions", content=body, headers=headers)
    if response.status_code != httpx.codes.ACCEPTED:
        raise SeedError(f"POST /v1/webhooks/decisions: {response.status_code} {_problem(response)}")
    result = response.json()
    return int(result["accepted"]), int(result["duplicates"])


# ------------------------------------------------------------------------- the QA team

# Auditors: (reviewer id, markets, languages). Between them they read every demo language.
AUDITORS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("qa-dach-1", ("DE", "AT", "CH"), ("de", "en")),
    ("qa-dach-2", ("DE", "AT", "CH"), ("de", "en")),
    ("qa-fr-1", ("FR", "CH"), ("fr", "it", "en")),
)
TEAM_LEAD = "lead-dach-1"
CALIBRATION_TITLE = "Demo: hate speech or harassment?"
QUIZ_TITLE = "Demo: hate speech policy refresher"
TRAINING_PLAN_TITLE = "Demo: hate speech remedial plan"
POLICY_POC = "poc-policy-1"
POLICY_UPDATE_TITLE = "Demo: quoting a slur to condemn it"
# Audits per market day at most, so judging the week stays quick.
DEMO_DAILY_CAP = 12
# How many audits one run judges at most (a safety net, not a target).
MAX_JUDGED = 5000


class DemoApi:
    """The seeder's HTTP calls: one problem line on any unexpected status."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def call(
        self,
        method: str,
        path: str,
        key: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        expect: tuple[int, ...] = (200, 201),
    ) -> Any:
        """Send one request; its JSON body (None for 204), or SeedError."""
        response = self.client.request(
            method, path, json=json, params=params, headers={"Authorization": f"Bearer {key}"}
        )
        if response.status_code not in expect:
            raise SeedError(f"{method} {path}: {response.status_code} {_problem(response)}")
        return None if response.status_code == httpx.codes.NO_CONTENT else response.json()

    def list_all(
        self, path: str, key: str, params: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        """Every item of a paged list endpoint."""
        items: list[dict[str, Any]] = []
        query: dict[str, Any] = {**(params or {}), "limit": 1000}
        while True:
            page = self.call("GET", path, key, params=query)
            items.extend(page["items"])
            if not page.get("next_cursor"):
                return items
            query["cursor"] = page["next_cursor"]


@dataclass
class TemporaryKeys:
    """API keys created for this run (auditors, moderators, the policy POC), revoked after."""

    api: DemoApi
    admin_key: str
    created: dict[tuple[str, str | None], tuple[str, str]] = field(default_factory=dict)

    def key(self, role: str, reviewer_id: str | None = None) -> str:
        """A key of ``role`` bound to ``reviewer_id``, created on first use."""
        if (role, reviewer_id) not in self.created:
            body = {"name": f"seed-demo {role} {reviewer_id or ''}".strip(), "role": role}
            if reviewer_id is not None:
                body["reviewer_id"] = reviewer_id
            made = self.api.call("POST", "/v1/api-keys", self.admin_key, json=body)
            self.created[(role, reviewer_id)] = (str(made["id"]), str(made["key"]))
        return self.created[(role, reviewer_id)][1]

    def revoke_all(self) -> None:
        """Revoke every key this run created."""
        for key_id, _ in self.created.values():
            self.api.call("DELETE", f"/v1/api-keys/{key_id}", self.admin_key)
        self.created.clear()


def _market_languages(market: Market) -> list[str]:
    return [language for language, _ in market.languages]


def put_profiles(api: DemoApi, admin_key: str, moderators: list[Moderator]) -> int:
    """Reviewer profiles for every moderator, auditor and the team lead; returns how many."""
    profiles: dict[str, dict[str, Any]] = {}
    for moderator in moderators:
        profiles[moderator.moderator_id] = {
            "markets": [moderator.market.code],
            "languages": _market_languages(moderator.market),
            "team": f"{moderator.market.code.lower()}-{moderator.shift}",
        }
    for reviewer_id, markets, languages in AUDITORS:
        profiles[reviewer_id] = {
            "markets": list(markets),
            "languages": list(languages),
            "team": "qa",
        }
    profiles[TEAM_LEAD] = {"markets": ["DE", "AT", "CH"], "languages": ["de", "en"], "team": "qa"}
    for reviewer_id, profile in profiles.items():
        api.call("PUT", f"/v1/reviewers/{reviewer_id}", admin_key, json=profile)
    return len(profiles)


def ensure_sampling_plans(api: DemoApi, admin_key: str) -> int:
    """One plan per demo market unless the market has one; returns how many were created."""
    planned = {plan["market"] for plan in api.list_all("/v1/sampling-plans", admin_key)}
    created = 0
    for market in MARKETS:
        if market.code in planned:
            continue
        api.call(
            "POST",
            "/v1/sampling-plans",
            admin_key,
            json={
                "name": f"demo {market.code}",
                "market": market.code,
                "rate": 0.01,
                "min_per_moderator": 1,
                "daily_cap": DEMO_DAILY_CAP,
                "label_boosts": {"child_safety": 5.0, "self_harm": 3.0},
                "action_boosts": {"escalate": 2.0},
            },
        )
        created += 1
    return created


def sample_days(api: DemoApi, admin_key: str, days: list[date], *, timeout_seconds: float) -> None:
    """Sample each day (every market with a plan) and wait for each job to finish."""
    for day in days:
        accepted = api.call(
            "POST", "/v1/audits/sample", admin_key, json={"day": day.isoformat()}, expect=(202,)
        )
        deadline = time.monotonic() + timeout_seconds
        while True:
            job = api.call("GET", f"/v1/jobs/{accepted['job_id']}", admin_key)
            if job["status"] == "complete":
                break
            if job["status"] == "failed":
                raise SeedError(f"sampling {day} failed: {job.get('error')}")
            if time.monotonic() > deadline:
                raise SeedError(
                    f"sampling {day} did not finish within {timeout_seconds:.0f} s; "
                    "is the report worker running?"
                )
            time.sleep(0.2)


def _verdict(decision: dict[str, Any], *, seed: int, error_rate: float) -> dict[str, Any]:
    """A deterministic verdict: mostly correct, sometimes over- or under-enforcement."""
    rng = random.Random(f"{seed}:{decision['event_id']}")  # noqa: S311 - demo data
    if rng.random() >= error_rate:
        return {"outcome": "correct"}
    severity = rng.choice(("critical", "major", "major", "minor", "minor", "minor"))
    if decision["action"] == "approve":
        # Under-enforcement: the content broke a policy the moderator let through.
        expected = {"expected_action": "remove", "expected_labels": [_pick(rng, POLICIES)]}
    elif decision["action"] == "escalate":
        expected = {"expected_action": "remove"}
    else:
        expected = {"expected_action": "approve"}
    return {
        "outcome": "incorrect",
        **expected,
        "severity": severity,
        "comment": "demo: the policy points the other way",
    }


def judge_audits(
    api: DemoApi, keys: TemporaryKeys, *, seed: int, error_rate: float
) -> tuple[int, int]:
    """Each auditor claims and judges until nothing is left; returns (judged, incorrect)."""
    judged = incorrect = 0
    for reviewer_id, _, _ in AUDITORS:
        key = keys.key("qa_auditor", reviewer_id)
        while judged < MAX_JUDGED:
            audit = api.call("POST", "/v1/audits/claim", key, expect=(200, 204))
            if audit is None:
                break
            # The first two verdicts are incorrect whatever the draw, so the demo always has
            # disagreements to dispute and rule on.
            rate = 1.0 if incorrect < 2 else error_rate
            body = _verdict(audit["decision"], seed=seed, error_rate=rate)
            api.call("POST", f"/v1/audits/{audit['id']}/verdict", key, json=body)
            judged += 1
            incorrect += body["outcome"] == "incorrect"
    return judged, incorrect


def rule_on_disputes(api: DemoApi, admin_key: str, keys: TemporaryKeys) -> int:
    """Two moderators dispute their incorrect verdicts; the policy POC upholds one and
    overturns the other. Skipped when a ruling exists already; returns rulings made."""
    for status in ("upheld", "overturned"):
        if api.call("GET", "/v1/disagreements", admin_key, params={"status": status, "limit": 1})[
            "items"
        ]:
            return 0
    open_ = api.list_all("/v1/disagreements", admin_key, {"status": "open"})
    ruled = 0
    poc = keys.key("policy_poc", POLICY_POC)
    for disagreement, outcome in zip(open_[:2], ("upheld", "overturned"), strict=False):
        moderator = keys.key("moderator", disagreement["moderator_id"])
        path = f"/v1/disagreements/{disagreement['id']}"
        api.call("POST", f"{path}/dispute", moderator, json={"reason": "I applied the policy"})
        note = (
            "the verdict stands: see the policy's examples"
            if outcome == "upheld"
            else "the policy allows this in context"
        )
        api.call("POST", f"{path}/resolve", poc, json={"outcome": outcome, "note": note})
        ruled += 1
    return ruled


def run_calibration(
    api: DemoApi, admin_key: str, keys: TemporaryKeys, events: list[dict[str, Any]], seed: int
) -> bool:
    """A DACH session on six enforced items, labelled by the DACH auditors and closed."""
    if any(
        item["title"] == CALIBRATION_TITLE for item in api.list_all("/v1/calibrations", admin_key)
    ):
        return False
    categories = ["hate_speech", "harassment", "no_violation"]
    chosen = [
        event
        for event in events
        if event["market"] == "DE" and set(event["policy_labels"]) & {"hate_speech", "harassment"}
    ][:6]
    if len(chosen) < 2:
        return False
    participants = [reviewer_id for reviewer_id, markets, _ in AUDITORS if "DE" in markets]
    session = api.call(
        "POST",
        "/v1/calibrations",
        admin_key,
        json={
            "title": CALIBRATION_TITLE,
            "market": "DE",
            "categories": categories,
            "items": [
                {"content_id": event["content_id"], "golden": event["policy_labels"][0]}
                if index == 0
                else {"content_id": event["content_id"]}
                for index, event in enumerate(chosen)
            ],
            "participants": participants,
        },
    )
    rng = random.Random(f"{seed}:calibration")  # noqa: S311 - demo data
    for participant in participants:
        labels = [
            {
                "content_id": event["content_id"],
                # Mostly the moderator's label; now and then a different reading.
                "label": event["policy_labels"][0]
                if rng.random() < 0.75
                else rng.choice(categories),
            }
            for event in chosen
        ]
        api.call(
            "PUT",
            f"/v1/calibrations/{session['id']}/labels",
            keys.key("qa_auditor", participant),
            json={"labels": labels},
        )
    api.call("POST", f"/v1/calibrations/{session['id']}/close", admin_key)
    return True


QUIZ_QUESTIONS: list[dict[str, Any]] = [
    {
        "id": "q1",
        "kind": "choice",
        "prompt": "A slur quoted to condemn it: which action fits?",
        "options": ["approve", "remove", "restrict"],
        "answer": "approve",
    },
    {
        "id": "q2",
        "kind": "choice",
        "prompt": "Dehumanising comparison of a protected group: which action fits?",
        "options": ["approve", "remove", "restrict"],
        "answer": "remove",
    },
    {
        "id": "q3",
        "kind": "choice",
        "prompt": "Is satire exempt when it attacks a protected group?",
        "options": ["yes", "no"],
        "answer": "no",
    },
]


def run_quiz_and_training(
    api: DemoApi, admin_key: str, keys: TemporaryKeys, moderators: list[Moderator], now: datetime
) -> tuple[bool, bool]:
    """A hate speech quiz for four DACH moderators (two attempt it, one passes), and a
    remedial training plan for them; each created once. Returns (quiz, plan) created."""
    assignees = [m.moderator_id for m in moderators if m.market.code in ("DE", "AT")][:4]
    if not assignees:
        return False, False
    quiz = next(
        (q for q in api.list_all("/v1/quizzes", admin_key) if q["title"] == QUIZ_TITLE), None
    )
    quiz_created = quiz is None
    if quiz is None:
        quiz = api.call(
            "POST",
            "/v1/quizzes",
            admin_key,
            json={
                "title": QUIZ_TITLE,
                "policy_code": "hate_speech",
                "questions": QUIZ_QUESTIONS,
                "pass_mark": 0.6,
                "assignee_reviewer_ids": assignees,
                "due_at": (now + timedelta(days=7)).isoformat(),
            },
        )
        attempts = [
            {"q1": "approve", "q2": "remove", "q3": "no"},  # passes
            {"q1": "remove", "q2": "remove", "q3": "yes"},  # fails
        ]
        for reviewer_id, given in zip(assignees, attempts, strict=False):
            api.call(
                "POST",
                f"/v1/quizzes/{quiz['id']}/attempts",
                keys.key("moderator", reviewer_id),
                json={"answers": [{"question_id": q, "answer": a} for q, a in given.items()]},
            )
    plans = api.list_all("/v1/training-plans", admin_key)
    if any(plan["title"] == TRAINING_PLAN_TITLE for plan in plans):
        return quiz_created, False
    api.call(
        "POST",
        "/v1/training-plans",
        admin_key,
        json={
            "title": TRAINING_PLAN_TITLE,
            "kind": "remedial",
            "owners": [TEAM_LEAD],
            "assignees": assignees,
            "items": [
                {
                    "id": "read",
                    "kind": "read_policy",
                    "policy_code": "hate_speech",
                    "due_at": (now + timedelta(days=3)).isoformat(),
                },
                {
                    "id": "quiz",
                    "kind": "pass_quiz",
                    "quiz_id": quiz["id"],
                    "due_at": (now + timedelta(days=7)).isoformat(),
                },
                {
                    "id": "shadow",
                    "kind": "shadow_audits",
                    "count": 5,
                    "due_at": (now + timedelta(days=14)).isoformat(),
                },
            ],
        },
    )
    return quiz_created, True


# The policy update's text: English, the original, and its German translation.
POLICY_UPDATE_TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "title": POLICY_UPDATE_TITLE,
        "summary": "A slur quoted to report on it or to condemn it is not hate speech.",
        "body": (
            "Content that quotes a slur in order to report on it, to condemn it or to "
            "educate about it is approved. Remove it when the quote endorses the slur or "
            "targets a person. When in doubt, restrict and escalate."
        ),
    },
    "de": {
        "title": "Demo: Zitieren einer Beleidigung, um sie zu verurteilen",
        "summary": (
            "Eine zitierte Beleidigung, über die berichtet oder die verurteilt wird, ist "
            "keine Hassrede."
        ),
        "body": (
            "Inhalte, die eine Beleidigung zitieren, um darüber zu berichten, sie zu "
            "verurteilen oder darüber aufzuklären, werden freigegeben. Entfernen, wenn das "
            "Zitat die Beleidigung gutheißt oder eine Person angreift. Im Zweifel "
            "einschränken und eskalieren."
        ),
    },
}

# (asked by a moderator of this market, question, the POC's answer or None: left open).
POLICY_QUESTIONS: tuple[tuple[str, str, str | None], ...] = (
    (
        "DE",
        "A news clip quotes a slur in its headline: approve, or restrict for the headline?",
        "Approve: the clip reports on the slur. Restrict only when the headline alone is shown "
        "without the report, as in a thumbnail.",
    ),
    (
        "AT",
        "Does a slur in a song lyric count as quoting it when the video is a cover?",
        None,
    ),
)


def _dach_moderators(moderators: list[Moderator], market: str) -> list[str]:
    return [m.moderator_id for m in moderators if m.market.code == market]


def publish_policy_update(
    api: DemoApi, admin_key: str, keys: TemporaryKeys, moderators: list[Moderator], now: datetime
) -> tuple[bool, int]:
    """The policy POC publishes a hate speech update for DE and AT (with a German
    translation), once; some of their moderators and the DACH auditors acknowledge it.
    Returns (published now, acknowledgements made by this run)."""
    existing = next(
        (
            update
            for update in api.list_all("/v1/policy-updates", admin_key)
            if update["title"] == POLICY_UPDATE_TITLE
        ),
        None,
    )
    if existing is not None and existing["status"] == "published":
        return False, 0
    poc = keys.key("policy_poc", POLICY_POC)
    if existing is None:
        existing = api.call(
            "POST",
            "/v1/policy-updates",
            poc,
            json={
                **POLICY_UPDATE_TEXTS["en"],
                "language": "en",
                "translations": {"de": POLICY_UPDATE_TEXTS["de"]},
                "policy_codes": ["hate_speech"],
                "markets": ["DE", "AT"],
                # A week ahead: the pending readers get their reminder before it applies.
                "effective_at": (now + timedelta(days=7)).isoformat(),
            },
        )
    api.call("POST", f"/v1/policy-updates/{existing['id']}/publish", poc)
    # Half of the DE and AT moderators (and the DACH auditors) have read it; the others
    # are pending.
    readers = [
        *_dach_moderators(moderators, "DE")[::2],
        *_dach_moderators(moderators, "AT")[::2],
    ]
    acknowledged = 0
    for reviewer_id in readers:
        api.call(
            "POST",
            f"/v1/policy-updates/{existing['id']}/acknowledge",
            keys.key("moderator", reviewer_id),
        )
        acknowledged += 1
    for reviewer_id, markets, _ in AUDITORS:
        if {"DE", "AT"} & set(markets):
            api.call(
                "POST",
                f"/v1/policy-updates/{existing['id']}/acknowledge",
                keys.key("qa_auditor", reviewer_id),
            )
            acknowledged += 1
    return True, acknowledged


def ask_policy_questions(
    api: DemoApi, admin_key: str, keys: TemporaryKeys, moderators: list[Moderator]
) -> int:
    """A DE moderator's question the POC answers and an AT moderator's left open, each asked
    once (found by asker and text). Returns how many questions this run asked."""
    asked = 0
    for market, text, answer in POLICY_QUESTIONS:
        askers = _dach_moderators(moderators, market)
        if not askers:
            continue
        asker = askers[0]
        question = next(
            (
                q
                for q in api.list_all(
                    "/v1/policy-questions",
                    admin_key,
                    {"asked_by": asker, "policy_code": "hate_speech"},
                )
                if q["question"] == text
            ),
            None,
        )
        if question is None:
            question = api.call(
                "POST",
                "/v1/policy-questions",
                keys.key("moderator", asker),
                json={"policy_code": "hate_speech", "market": market, "question": text},
            )
            asked += 1
        if answer is not None and question["status"] == "open":
            api.call(
                "POST",
                f"/v1/policy-questions/{question['id']}/answer",
                keys.key("policy_poc", POLICY_POC),
                json={"answer": answer},
            )
    return asked


def seed_demo(
    options: SeedOptions,
    *,
    progress: Callable[[str], None] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> SeedSummary:
    """Post the demo decisions through the API, then do a week of QA work on them.

    Raises SeedError when the API refuses a request or cannot be reached.
    """
    if not 1 <= options.batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}")
    say = progress or (lambda _: None)
    now = datetime.now(UTC)
    end = options.end or now.replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        with httpx.Client(
            base_url=options.api_url, timeout=options.timeout_seconds, transport=transport
        ) as client:
            return _seed(client, options, end=end, now=now, say=say)
    except httpx.TransportError as exc:
        raise SeedError(
            f"cannot reach the API at {options.api_url} ({type(exc).__name__}: {exc}); "
            "is `plumbline run` running, on this port (PLUMBLINE_API_PORT)?"
        ) from exc


def _seed(
    client: httpx.Client,
    options: SeedOptions,
    *,
    end: datetime,
    now: datetime,
    say: Callable[[str], None],
) -> SeedSummary:
    api = DemoApi(client)
    admin_key = options.admin_key
    name, secret = create_source(client, admin_key, options.source_name)
    summary = SeedSummary(source_name=name)
    events = list(
        generate_decisions(
            seed=options.seed,
            days=options.days,
            moderators=options.moderators,
            decisions_per_shift=options.decisions_per_shift,
            end=end,
        )
    )
    for batch in _batches(iter(events), options.batch_size):
        accepted, duplicates = post_batch(client, name, secret, batch)
        summary.sent += len(batch)
        summary.accepted += accepted
        summary.duplicates += duplicates
        summary.batches += 1
        if summary.batches % 10 == 0:
            say(f"posted {summary.sent} decisions")
    if options.decisions_only:
        return summary

    # Same seed, same first draws: the moderators of the generated decisions.
    moderators = build_moderators(random.Random(options.seed), options.moderators)  # noqa: S311
    summary.reviewers = put_profiles(api, admin_key, moderators)
    summary.plans_created = ensure_sampling_plans(api, admin_key)
    first_day = (end - timedelta(days=options.days)).date()
    days = [first_day + timedelta(days=offset) for offset in range(options.days)]
    say(f"sampling {len(days)} days")
    sample_days(api, admin_key, days, timeout_seconds=options.job_timeout_seconds)
    summary.days_sampled = len(days)

    keys = TemporaryKeys(api, admin_key)
    try:
        _qa_work(api, keys, options, summary, events, moderators, now=now, say=say)
    except BaseException:
        # Revoke what can be revoked, without hiding the failure that got us here.
        with contextlib.suppress(SeedError, httpx.HTTPError):
            keys.revoke_all()
        raise
    keys.revoke_all()
    return summary


def _qa_work(
    api: DemoApi,
    keys: TemporaryKeys,
    options: SeedOptions,
    summary: SeedSummary,
    events: list[dict[str, Any]],
    moderators: list[Moderator],
    *,
    now: datetime,
    say: Callable[[str], None],
) -> None:
    """Judge the sampled week, rule on disputes, calibrate, quiz and train, and the policy
    POC's side: a published policy update, acknowledgements, questions."""
    admin_key = keys.admin_key
    summary.audits_judged, summary.judged_incorrect = judge_audits(
        api, keys, seed=options.seed, error_rate=options.error_rate
    )
    say(f"judged {summary.audits_judged} audits ({summary.judged_incorrect} incorrect)")
    summary.disputes_ruled = rule_on_disputes(api, admin_key, keys)
    summary.calibration_created = run_calibration(api, admin_key, keys, events, options.seed)
    summary.quiz_created, summary.training_plan_created = run_quiz_and_training(
        api, admin_key, keys, moderators, now
    )
    summary.policy_update_published, summary.acknowledgements = publish_policy_update(
        api, admin_key, keys, moderators, now
    )
    summary.policy_questions_asked = ask_policy_questions(api, admin_key, keys, moderators)
