"""The mixed-workload benchmark: its reconciliation catches what it must, and a tiny run of the
whole thing on ``plumbline run`` reconciles and writes its section of the report.

``python -m benchmarks.mixed`` starts ``plumbline run`` (embedded PostgreSQL and Redis in a
temporary data directory) and the notifier sink as processes, so the tiny run is a subprocess
too. No timings are asserted: speed is what the benchmark itself reports.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from benchmarks.mixed import (
    PROCESSES,
    Reconciliation,
    RedisKeys,
    SinkTally,
    Tally,
    count_redis_keys,
    curve_rows,
    flat,
    growth_in_second_half,
    redis_keys_line,
    tally_sink,
)
from benchmarks.stack import ProcessUse, default_environment, machine_busy
from shared.core.queue import ArqRedis
from shared.core.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent

OTHER_SECTION = "<!-- begin intake -->\n## Intake\n\nkept as it is\n<!-- end intake -->\n"
STALE_SECTION = "<!-- begin mixed -->\n## Mixed\n\nstale\n<!-- end mixed -->\n"
CHECK_ROW = re.compile(r"^\| (?P<check>[^|]+) \| [^|]+ \| [^|]+ \| (?P<verdict>[^|]+) \|$")


def reconciled(**changes: object) -> tuple[Reconciliation, Tally]:
    """A run where everything adds up: 1,000 events, 10 verdicts (2 incorrect), 2 channels
    plus the correction target, so 6 deliveries; then ``changes`` to what was counted."""
    tally = Tally(events_accepted=1000, verdicts=10, incorrect=2)
    result = Reconciliation(
        drained=True,
        decisions=1000,
        rolled_up=1000,
        verdicts=10,
        incorrect_verdicts=2,
        disagreements=2,
        deliveries_by_status={"delivered": 6},
        expected_deliveries=6,
        sink=SinkTally(arrivals=7, distinct=6, two_bodies=0, by_path={}),
    )
    for name, value in changes.items():
        setattr(result, name, value)
    return result, tally


def failing(result: Reconciliation, tally: Tally) -> list[str]:
    return [name for name, _, _, ok in result.checks(tally) if not ok]


@pytest.mark.no_db
def test_sink_tally_counts_messages_per_channel_and_ids_sent_with_two_bodies() -> None:
    lines = [
        "/hooks/00\tevt-1\taaa",
        "/hooks/01\tevt-1\taaa",  # the same event to another channel: another message
        "/hooks/00\tevt-1\taaa",  # a retry with the same bytes: allowed, counted once
        "/hooks/00\tevt-2\tbbb",
        "/hooks/00\tevt-2\tccc",  # the same message with other bytes: never allowed
        "",
    ]
    tally = tally_sink(lines)
    assert (tally.arrivals, tally.distinct, tally.two_bodies) == (5, 3, 1)
    assert tally.by_path == {"/hooks/00": 4, "/hooks/01": 1}


@pytest.mark.no_db
def test_reconciliation_holds_when_everything_adds_up_and_fails_on_each_discrepancy() -> None:
    assert failing(*reconciled()) == []
    # An event stored without an acknowledgement is only allowed for unanswered requests.
    assert failing(*reconciled(decisions=1001, rolled_up=1001)) == [
        "decisions stored = events acknowledged"
    ]
    result, tally = reconciled(decisions=1001, rolled_up=1001)
    tally.events_unanswered = 1
    assert failing(result, tally) == []
    assert failing(*reconciled(decisions=999)) == [
        "decisions stored = events acknowledged",
        "intake rollups = rows (quality_rollups, policy '*')",
    ]
    assert failing(*reconciled(rolled_up=999)) == [
        "intake rollups = rows (quality_rollups, policy '*')"
    ]
    assert failing(*reconciled(pending_outbox=3)) == ["outbox rows not relayed"]
    assert failing(*reconciled(verdicts=9)) == ["verdicts stored = verdicts acknowledged"]
    assert failing(*reconciled(disagreements=1)) == [
        "disagreements = incorrect verdicts acknowledged"
    ]
    assert failing(*reconciled(deliveries_by_status={"delivered": 5, "dead": 1})) == [
        "deliveries delivered = expected from the events routed",
        "sink arrivals (distinct channel, message id) = deliveries",
    ]
    assert failing(*reconciled(sink=SinkTally(6, 5, 0, {}))) == [
        "sink arrivals (distinct channel, message id) = deliveries"
    ]
    assert failing(*reconciled(sink=SinkTally(7, 6, 1, {}))) == [
        "message ids with two different bodies"
    ]
    result, tally = reconciled()
    tally.duplicates = 1
    assert failing(result, tally) == ["duplicates reported by intake"]


@pytest.mark.no_db
def test_stack_environment_is_make_runs_defaults_plus_the_port_and_what_is_added(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLUMBLINE_LOG_LEVEL", "DEBUG")  # a caller's setting must not leak in
    monkeypatch.setenv("H5_UNRELATED", "kept")
    env = default_environment(tmp_path, 8123, {"PLUMBLINE_INSECURE_TARGET_HOSTS": "127.0.0.1"})
    assert {k: v for k, v in env.items() if k.startswith("PLUMBLINE_")} == {
        "PLUMBLINE_DATA_DIR": str(tmp_path / "data"),
        "PLUMBLINE_API_PORT": "8123",
        "PLUMBLINE_INSECURE_TARGET_HOSTS": "127.0.0.1",
    }
    assert env["H5_UNRELATED"] == "kept"


@pytest.mark.no_db
def test_machine_busy_is_the_share_of_all_cpu_time_not_idle() -> None:
    times = namedtuple("times", "user system idle iowait")
    before, after = times(10, 5, 100, 1), times(40, 15, 150, 11)
    # 100 s of CPU time passed, 60 of it idle or waiting for I/O.
    assert machine_busy(before, after) == pytest.approx(0.4)
    assert machine_busy(before, before) == 0.0


@pytest.mark.no_db
def test_memory_curve_tells_a_plateau_from_a_steady_climb() -> None:
    def use(mib: float, processes: int = 1) -> ProcessUse:
        return ProcessUse(memory_mib=mib, cpu_s=0.0, processes=processes)

    warming = [100.0, 120.0, 130.0, 131.0, 131.0]  # grows, then levels off
    leaking = [100.0, 110.0, 120.0, 130.0, 140.0]  # grows as much late as early
    curve = [
        (60.0 * n, {"api": use(w), "relay": use(lk), "postgres": use(w * 4, processes=4)})
        for n, (w, lk) in enumerate(zip(warming, leaking, strict=True))
    ]
    assert growth_in_second_half(curve, "api") == pytest.approx(1 / 130)
    assert growth_in_second_half(curve, "relay") == pytest.approx(20 / 120)
    assert growth_in_second_half(curve, "notifier") is None  # not sampled
    assert growth_in_second_half(curve[:2], "api") is None  # too short to tell

    rows = curve_rows(curve)
    assert rows[0] == "| Process | 0 min | 1 min | 2 min | 3 min | end |"
    assert "| api | 100 | 120 | 130 | 131 | 131 |" in rows
    # PostgreSQL's sum moves with its number of backends: also shown per process.
    assert (
        "| postgres, per process (processes) | 100.0 (4) | 120.0 (4) | 130.0 (4) | "
        "131.0 (4) | 131.0 (4) |" in rows
    )
    assert curve_rows([]) == []


def test_memory_is_flat_when_it_ends_near_the_warm_up_figure_or_levelled_off() -> None:
    def use(mib: float) -> ProcessUse:
        return ProcessUse(memory_mib=mib, cpu_s=0.0, processes=1)

    def judged(postgres: list[float]) -> bool:
        """Every other process stays at 100 MiB; PostgreSQL follows ``postgres`` per minute
        (the first point is after the warm-up)."""
        curve = [
            (60.0 * n, {name: use(mib if name == "postgres" else 100.0) for name in PROCESSES})
            for n, mib in enumerate(postgres)
        ]
        memory = {"after warm-up": curve[0][1], "end": curve[-1][1]}
        return flat(memory, curve)

    assert judged([300.0, 320.0, 325.0, 328.0, 329.0])  # +9.7 %: within 10 %
    # +17 %, but the caches filled early: +0.5 % from the middle (350) to the end (352).
    assert judged([300.0, 340.0, 350.0, 351.0, 352.0])
    # The same +17 % at a steady rate is a climb: +6 % over the second half.
    assert not judged([300.0, 313.0, 326.0, 339.0, 352.0])
    # Too few points to tell a plateau: only the end against the warm-up counts.
    assert not judged([300.0, 352.0])


async def test_redis_keys_counts_every_key_and_the_kept_job_results(
    queue: ArqRedis, settings: Settings
) -> None:
    assert settings.redis_url is not None
    await queue.set("arq:result:one", b"x")
    await queue.set("arq:result:two", b"x")
    await queue.set("arq:job:three", b"x")

    assert await count_redis_keys(settings.redis_url) == RedisKeys(total=3, results=2)


@pytest.mark.no_db
def test_redis_keys_line_gives_each_point() -> None:
    keys = {
        "start": RedisKeys(total=11, results=0),
        "after warm-up": RedisKeys(total=1_180, results=1_090),
        "end": RedisKeys(total=1_250, results=1_120),
    }
    assert redis_keys_line(keys) == (
        "Redis keys (start / after warm-up / end): 11 / 1,180 / 1,250; of them kept job "
        "results (`arq:result:*`): 0 / 1,090 / 1,120."
    )
    assert redis_keys_line({}) == "Redis keys: not counted."


@pytest.mark.no_db
def test_tiny_run_on_plumbline_run_reconciles_and_writes_its_section(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    report.write_text(OTHER_SECTION + "\n" + STALE_SECTION)
    command = [
        sys.executable, "-m", "benchmarks.mixed",
        "--duration", "12", "--warmup", "2", "--seed-events", "600", "--auditors", "3",
        "--single-rate", "5", "--batch-rate", "0.5", "--batch-size", "20",
        "--sampling-rate", "0.5", "--sample-every", "4", "--think-ms", "100",
        "--briefing-every", "4", "--accuracy-every", "4", "--xlsx-every", "6",
        "--overview-every", "4", "--audits-page-every", "4", "--channels", "2",
        "--drain-timeout", "120", "--output", str(report),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    text = report.read_text()

    assert text.startswith(OTHER_SECTION)
    assert text.count("<!-- begin mixed -->") == 1
    assert "stale" not in text
    section = text.split("<!-- begin mixed -->", 1)[1]
    assert "## Mixed workload on `make run`'s stack (issue #12)" in section
    checks = {
        found["check"]: found["verdict"].strip()
        for line in section.splitlines()
        if (found := CHECK_ROW.match(line)) and found["check"] not in ("Check", "---")
    }
    assert len(checks) == 9, checks
    assert set(checks.values()) == {"holds"}, checks
    # The auditors judged something, so notifications were due and arrived.
    verdicts = re.search(r"verdicts (\d[\d,]*) \((\d[\d,]*) incorrect\)", section)
    assert verdicts is not None, section
    assert int(verdicts.group(1).replace(",", "")) > 0, section
    for endpoint in (
        "POST /v1/webhooks/decisions (single)",
        "POST /v1/audits/claim",
        "GET /v1/reports/briefing (JSON)",
        "GET /console/overview",
    ):
        assert f"| {endpoint} |" in section
    assert "Errors in all: **0**" in section
    assert "| postgres |" in section
    assert "| api |" in section
    assert "Memory over the run, MiB" in section
    assert "| postgres, per process (processes) |" in section
    assert "Redis keys (start / after warm-up / end): " in section
