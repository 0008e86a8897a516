"""``plumbline run`` end to end, as a subprocess: serves, stops cleanly, keeps its data,
brings back a child or an embedded server that died, and prints its key and URLs last."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from services.cli import _api_ready
from tests.support.plumbline_run import (
    ADMIN_KEY,
    kill_and_wait,
    live_members_of_group,
    pid_gone,
    run_environment,
    start_run,
    stop_and_check,
    wait_for_output,
    wait_ready,
)


@pytest.fixture
def base_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with run_environment(tmp_path) as env:
        yield env


def test_run_serves_and_stops_cleanly_on_sigterm(base_env: dict[str, str], tmp_path: Path) -> None:
    run = start_run({**base_env, "PLUMBLINE_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY}, tmp_path, "run")
    try:
        wait_ready(run)
        # The bootstrap key was ensured before the API started serving.
        response = httpx.get(
            f"{run.base_url}/v1/api-keys", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert response.status_code == 200, response.text
        assert f"{run.base_url}/docs" in wait_for_output(run, r"docs:  (\S+)").group(0)
        assert "generated admin API key" not in run.output()
        assert "the value of PLUMBLINE_BOOTSTRAP_ADMIN_KEY" in run.output()
    except BaseException:
        run.process.kill()
        raise
    stop_and_check(run)


def test_second_run_finds_the_data_of_the_first(base_env: dict[str, str], tmp_path: Path) -> None:
    first = start_run(base_env, tmp_path, "first")
    try:
        wait_ready(first)
        match = wait_for_output(first, r"generated admin API key.*: (\S+)")
        generated = match.group(1)
    except BaseException:
        first.process.kill()
        raise
    stop_and_check(first)

    second = start_run(base_env, tmp_path, "second")
    try:
        wait_ready(second)
        wait_for_output(second, "Plumbline is running")
        assert "generated admin API key" not in second.output()
        response = httpx.get(
            f"{second.base_url}/v1/api-keys", headers={"Authorization": f"Bearer {generated}"}
        )
        assert response.status_code == 200, response.text
    except BaseException:
        second.process.kill()
        raise
    stop_and_check(second)


def test_children_stop_when_run_itself_is_killed(base_env: dict[str, str], tmp_path: Path) -> None:
    run = start_run(base_env, tmp_path, "killed-run")
    try:
        wait_ready(run)
        children = run.child_pids()
        assert len(children) == 4, run.diagnostics()
        # SIGKILL leaves `run` no chance to stop them: the kernel tells each child instead.
        run.process.kill()
        run.process.wait()
        deadline = time.monotonic() + 30
        while left := [pid for pid in children if not pid_gone(pid)]:
            assert time.monotonic() < deadline, f"left running: {left}\n{run.diagnostics()}"
            time.sleep(0.1)
        # Their own process groups (uvicorn's workers) are empty too.
        assert not [member for pid in children for member in live_members_of_group(pid)]
    finally:
        run.process.kill()
        # The embedded servers (Redis, PostgreSQL binaries) have no such tie: stop them here.
        for pid in set(run.pids()) - set(run.child_pids()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_killed_child_comes_back_and_the_api_keeps_answering(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    run = start_run(base_env, tmp_path, "heal-child")
    try:
        wait_ready(run)
        worker = int(wait_for_output(run, r"started report-worker \(pid (\d+)\)").group(1))
        kill_and_wait(worker)
        back = wait_for_output(run, r"report-worker running again \(pid (\d+)\)")
        assert "report-worker exited with code -9" in run.err.read_text(), run.diagnostics()
        assert not pid_gone(int(back.group(1)))
        # The API never stopped: the same process answers, the run goes on.
        with httpx.Client(base_url=run.base_url, timeout=2.0) as client:
            assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").status_code == 200
        assert run.process.poll() is None
    except BaseException:
        run.process.kill()
        raise
    stop_and_check(run)


def test_killed_embedded_redis_comes_back_on_its_port(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    run = start_run(base_env, tmp_path, "heal-redis")
    try:
        wait_ready(run)
        started = wait_for_output(run, r"embedded Redis at (\S+) in .* \(pid (\d+)\)")
        url, pid = started.group(1), int(started.group(2))
        kill_and_wait(pid)
        back = wait_for_output(run, r"embedded Redis running again at (\S+) \(pid (\d+)\)")
        assert back.group(1) == url, run.diagnostics()
        assert not pid_gone(int(back.group(2)))
        # Everyone finds it at the old URL: the API is ready again, no child had to die.
        wait_ready(run)
        assert "exited with code" not in run.err.read_text(), run.diagnostics()
    except BaseException:
        run.process.kill()
        raise
    stop_and_check(run)


def test_start_up_block_comes_last_with_the_key_and_urls(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    run = start_run({**base_env, "PLUMBLINE_LOG_LEVEL": "INFO"}, tmp_path, "block", merged=True)
    try:
        wait_ready(run)
        wait_for_output(run, r"stop:  Ctrl-C\n.*={72}")
        output = run.output()
        block = output.index("Plumbline is running")
        # The API's start-up logs (JSON: the output is not a terminal) came before it.
        assert "Application startup complete" in output[:block], output
        assert '"level":' in output[:block]
        key = re.search(r"generated admin API key \(shown only now, keep it\): (\S+)", output)
        assert key is not None, output
        assert key.start() > block, output
        assert f"  API:   {run.base_url}\n" in output[block:]
        assert f"{run.base_url}/docs" in output[block:]
        response = httpx.get(
            f"{run.base_url}/v1/api-keys", headers={"Authorization": f"Bearer {key.group(1)}"}
        )
        assert response.status_code == 200, response.text
    except BaseException:
        run.process.kill()
        raise
    stop_and_check(run)


def test_killed_embedded_postgres_comes_back(base_env: dict[str, str], tmp_path: Path) -> None:
    env = {key: value for key, value in base_env.items() if key != "PLUMBLINE_DATABASE_URL"}
    run = start_run(env, tmp_path, "heal-postgres")
    try:
        wait_ready(run)
        pid = int(wait_for_output(run, r"embedded PostgreSQL in .* \(pid (\d+)\)").group(1))
        kill_and_wait(pid)
        back = wait_for_output(run, r"embedded PostgreSQL running again at \S+ \(pid (\d+)\)", 90)
        assert not pid_gone(int(back.group(1)))
        # The API's pool reconnects to the restarted server: ready again, nothing restarted.
        wait_ready(run)
        assert "exited with code" not in run.err.read_text(), run.diagnostics()
    except BaseException:
        run.process.kill()
        raise
    stop_and_check(run)


def test_only_the_apis_readiness_document_counts_as_ready() -> None:
    """Another process that took the API's port before uvicorn bound it must not be announced
    as Plumbline: in a suite, a test's HTTP server answering 200 "ok" on the chosen port made
    ``plumbline run`` print its start-up block before the API had started."""
    answers = {
        "/ok/readyz": b"ok",
        "/list/readyz": b"[]",
        "/other/readyz": b'{"status": "ok"}',
        "/ours/readyz": b'{"status": "ready", "degraded": []}',
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = answers[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        assert not _api_ready(f"{base}/ok")
        assert not _api_ready(f"{base}/list")
        assert not _api_ready(f"{base}/other")
        assert _api_ready(f"{base}/ours")
    finally:
        server.shutdown()
        server.server_close()
