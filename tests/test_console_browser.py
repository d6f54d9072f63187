"""The console in a real browser: headless Chromium (Debian's) driven by Selenium, against a real
``redraw serve --watch DIR --follow-up`` (in-process VOD emulator: tasks end after 2 s; a sweep every 1 s).

The page is loaded once; everything after happens without a reload: a real MP4 chosen in the file input
becomes a task whose row reaches ``succeeded``, the original and the redrawn video load side by side, a
file that is not a video and one of 2 GB are refused with the reason and no task, a second upload of the
same name gives a second row (with metadata for the upload rules).
``CONSOLE_SCREENSHOT_DIR=docs/img`` saves the screenshot the docs show."""
from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest

from browser import chromium, javascript_errors, require_browser
from serving import Served, clean_env, wait_for

SAMPLE = Path(__file__).resolve().parents[1] / "redraw" / "tools" / "data" / "redrawn-sample.mp4"


@pytest.fixture(scope="module")
def browser():
    yield from chromium()


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    require_browser()
    folder = tmp_path_factory.mktemp("bucket")
    (folder / "uploads").mkdir()
    with Served("--no-reload", "--instances", "2", "--watch", str(folder), "--follow-up", "--sweep-every", "1",
                env=clean_env()) as server:
        line = wait_for(lambda: next((x for x in server.errors() if "console: http://" in x), None), 30,
                        "the console's banner line")
        url = line.split("console: ", 1)[1].split(" ", 1)[0]
        yield server, url, folder


def _wait(driver, script: str, timeout: float = 30.0, what: str = "the page", args: tuple = ()):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(lambda d: d.execute_script(script, *args), what)


def _rows(driver, key: str) -> list:
    return driver.execute_script(
        "return [...document.querySelectorAll('#tasks li.task')].filter(li => li.dataset.key === arguments[0])"
        ".map(li => ({id: li.dataset.id, state: li.dataset.state, text: li.innerText}))", key)


def _status(driver) -> str:
    return driver.execute_script("return document.getElementById('upload-status').textContent")


def _choose(driver, path: Path) -> None:
    driver.find_element("css selector", "#file").send_keys(str(path))


def test_upload_to_succeeded_with_both_videos_playing_without_a_reload(browser, console, tmp_path, record_property):
    server, url, folder = console
    browser.get(url)
    ready_ms = int(_wait(browser, "return document.documentElement.dataset.ready", what="the first state"))
    interactive_ms = browser.execute_script(
        "const t = performance.getEntriesByType('navigation')[0]; return Math.round(t.domInteractive)")
    record_property("console_first_state_ms", ready_ms)
    record_property("console_dom_interactive_ms", interactive_ms)
    print(f"console: DOM interactive after {interactive_ms} ms, first state shown after {ready_ms} ms")
    assert "live" in browser.find_element("css selector", "#connection").text
    # every form control has a label (keyboard and screen-reader use)
    unlabeled = browser.execute_script(
        "return [...document.querySelectorAll('input, textarea')].filter(e => !e.labels || !e.labels.length)"
        ".map(e => e.id)")
    assert unlabeled == []
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    ActionChains(browser).send_keys(Keys.TAB).perform()       # the keyboard reaches the skip link, then the input
    assert browser.execute_script("return document.activeElement.className") == "skip"
    ActionChains(browser).send_keys(Keys.TAB).perform()
    assert browser.execute_script("return document.activeElement.id") == "file"
    browser.execute_script("""
        window.notReloaded = true;
        window.seen = new Set();   // every state and progress text the rows showed, as they changed
        new MutationObserver(() => document.querySelectorAll('#tasks li.task').forEach(li => {
            window.seen.add(li.dataset.state);
            window.seen.add(li.querySelector('.progress-text').textContent);
        })).observe(document.getElementById('tasks'), {subtree: true, childList: true, attributes: true,
                                                        characterData: true});
    """)

    clip = tmp_path / "clip.mp4"
    shutil.copyfile(SAMPLE, clip)
    _choose(browser, clip)
    _wait(browser, "return [...document.querySelectorAll('#tasks li.task')].some(li => "
                   "li.dataset.key === 'uploads/clip.mp4' && li.dataset.state === 'succeeded')",
          what="the row to show succeeded")
    assert browser.execute_script("return window.notReloaded === true")   # the row changed in place
    seen = browser.execute_script("return [...window.seen]")
    assert {"pending", "succeeded"} <= set(seen), seen
    assert any(text.startswith("VOD Progress ") for text in seen), seen   # asked of the VOD emulator
    assert f"Uploaded as uploads/clip.mp4 ({SAMPLE.stat().st_size} bytes): the COS trigger fired" in _status(browser)
    [row] = _rows(browser, "uploads/clip.mp4")
    assert row["id"].startswith("1500000001-AigcVideoRedrawTask-") and row["id"] in row["text"]

    # both videos load (readyState advances), from sources that answer 200 with a video type
    sources = _wait(browser, "const v = [...document.querySelectorAll('#tasks li.task video')]; "
                             "return v.length === 2 && v.every(x => x.readyState >= 1) && v.map(x => x.currentSrc)",
                    what="both videos to load")
    assert sorted(s.split("?")[0].split("/files/")[1] for s in sources) == ["redrawn/uploads/clip.mp4",
                                                                           "uploads/clip.mp4"]
    for source in sources:
        with urllib.request.urlopen(source, timeout=10) as answer:
            assert answer.status == 200 and answer.headers["Content-Type"].startswith("video/")
            assert answer.read() == (folder / source.split("?")[0].split("/files/")[1]).read_bytes()
    seek = urllib.request.Request(sources[1], headers={"Range": "bytes=100-199"})
    with urllib.request.urlopen(seek, timeout=10) as answer:
        assert answer.status == 206 and len(answer.read()) == 100

    # the function's lines for the task: the COS trigger's record and the one task.finished line
    browser.find_element("css selector", "#tasks li.task details.lines summary").click()
    text = _wait(browser, "return document.querySelector('#tasks li.task .line-text').textContent", what="the lines")
    events = [json.loads(line)["event"] for line in text.splitlines()]
    assert events[0] == "cos.record" and events.count("task.finished") == 1

    # the webhook that announced it: `redraw serve --follow-up` runs a webhook inbox (standardwebhooks checks
    # each delivery's signature), and the row lists what arrived for its TaskId
    assert browser.execute_script("return document.getElementById('inbox-note').textContent") == ""
    delivery = _wait(browser, "const li = [...document.querySelectorAll('#tasks li.task')].find(li => "
                              "li.dataset.key === 'uploads/clip.mp4'); const d = li && li.querySelector("
                              "'.delivery-list li.verified'); return d && d.textContent",
                     what="the verified webhook delivery on the row")
    assert "task.succeeded" in delivery and "signature verified" in delivery, delivery
    # the time it arrived, as a clock time of this minute or the one before (not a 1970 one from epoch seconds)
    minutes = browser.execute_script("return [0, 60000, 120000].map(ago => new Date(Date.now() - ago)"
                                     ".toLocaleTimeString().replace(/:\\d\\d(?=\\D*$)/, ''))")
    shown = delivery.split(" at ", 1)[1].split(": signature", 1)[0]
    assert any(shown.replace(shown[shown.rfind(":"):shown.rfind(":") + 3], "") == m for m in minutes), (shown, minutes)
    assert any("webhook" in line and row["id"] in line and "verified" in line for line in server.errors())
    assert javascript_errors(browser) == []

    if os.environ.get("CONSOLE_SCREENSHOT_DIR"):
        target = Path(os.environ["CONSOLE_SCREENSHOT_DIR"]) / "console.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(target))
    assert browser.get_screenshot_as_png()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_uploads_say_why_and_make_no_task(browser, console, tmp_path):
    server, url, folder = console
    if not browser.current_url.startswith(url):
        browser.get(url)
        _wait(browser, "return document.documentElement.dataset.ready")
    before = len(server.records())

    notes = tmp_path / "notes.mp4"          # a video's name, not a video's content: the server says so
    notes.write_text("these are my notes, not a video\n")
    _choose(browser, notes)
    _wait(browser, "return document.getElementById('upload-status').textContent.includes('not a video')",
          what="the reason")
    assert "notes.mp4 is not a video" in _status(browser)

    text = tmp_path / "notes.txt"           # not a video's name: the page says so before sending
    text.write_text("still notes\n")
    _choose(browser, text)
    _wait(browser, "return document.getElementById('upload-status').textContent.includes('notes.txt')")
    assert "notes.txt is not a video" in _status(browser)

    big = tmp_path / "big.mp4"              # 2 GB (sparse: no disk used): over what VOD takes
    with open(big, "wb") as handle:
        handle.truncate(2 * 1024 ** 3)
    _choose(browser, big)
    _wait(browser, "return document.getElementById('upload-status').textContent.includes('big.mp4')")
    assert "under 2 GB" in _status(browser) and "Nothing was uploaded" in _status(browser)

    assert not any((folder / "uploads" / name).exists() for name in ("notes.mp4", "notes.txt", "big.mp4"))
    assert not list((folder / ".console-uploads").glob("*"))   # nothing staged is left behind
    assert _rows(browser, "uploads/notes.mp4") == [] and _rows(browser, "uploads/big.mp4") == []
    assert len(server.records()) == before
    assert javascript_errors(browser, network=False) == []  # the refused upload's 415 is logged as a failed load


def test_the_same_name_twice_replaces_the_file_and_both_tasks_appear(browser, console, tmp_path):
    server, url, folder = console
    if not browser.current_url.startswith(url):
        browser.get(url)
        _wait(browser, "return document.documentElement.dataset.ready")
    clip = tmp_path / "twice.mp4"
    first = SAMPLE.read_bytes()
    clip.write_bytes(first)
    _choose(browser, clip)
    _wait(browser, "return document.getElementById('upload-status').textContent.includes('uploads/twice.mp4')")
    second = first + b"\0" * 16                 # another upload of the same name (trailing bytes: still an MP4)
    clip.write_bytes(second)
    browser.find_element("css selector", "#meta").send_keys("redraw-style: watercolor")   # metadata for the rules
    _choose(browser, clip)
    rows = _wait(browser, "const r = [...document.querySelectorAll('#tasks li.task')].filter(li => "
                          "li.dataset.key === 'uploads/twice.mp4'); return r.length === 2 && "
                          "r.every(li => li.dataset.state === 'succeeded') && r.map(li => li.dataset.id)",
                 what="two succeeded rows for the same name")
    assert len(set(rows)) == 2 and all(r.startswith("1500000001-AigcVideoRedrawTask-") for r in rows)
    assert (folder / "uploads" / "twice.mp4").read_bytes() == second       # the second replaced the first
    styles = {r["task_id"]: r["applied"]["style"] for r in server.records("uploads/twice.mp4")}
    assert sorted(styles.values(), key=str) == [None, "watercolor"]            # the second's metadata only
    browser.find_element("css selector", "#meta").clear()
    assert javascript_errors(browser) == []


def test_a_task_whose_output_cannot_be_played_says_so_and_the_page_keeps_working(browser, tmp_path):
    """A console of its own, its board fed the function's own lines for a task whose delivered file is not a
    video, and for a failed one: the rows say so, and the page goes on updating."""
    from redraw.tools.console import Console
    from redraw.tools.taskboard import TaskBoard

    (tmp_path / "uploads").mkdir()
    (tmp_path / "redrawn" / "uploads").mkdir(parents=True)
    shutil.copyfile(SAMPLE, tmp_path / "uploads" / "broken.mp4")
    (tmp_path / "redrawn" / "uploads" / "broken.mp4").write_bytes(b"<html>not a video</html>" * 40)
    board = TaskBoard(bucket="media-1250000000")
    task = "1500000001-AigcVideoRedrawTask-00000000000000000000000000000001"
    failed = "1500000001-AigcVideoRedrawTask-00000000000000000000000000000002"
    inbox = []   # what a webhook inbox's deliveries() gives (redraw.tools.inbox)
    with Console(board, folder=str(tmp_path), deliveries=lambda: list(inbox), idle_s=0.2) as console:
        browser.get(console.url + "/")
        _wait(browser, "return document.documentElement.dataset.ready")
        board.feed({"event": "cos.record", "outcome": "submitted", "key": "uploads/broken.mp4", "task_id": task,
                    "request_id": "r1", "level": "info", "timestamp": "2026-12-07T10:00:00Z"})
        board.feed({"event": "task.finished", "outcome": "succeeded", "task_id": task, "source_key": "uploads/broken.mp4",
                    "delivered_to": "cos://media-1250000000/redrawn/uploads/broken.mp4", "duration_s": 2.0,
                    "request_id": "r2", "level": "info", "timestamp": "2026-12-07T10:00:03Z"})
        text = _wait(browser, "const li = document.querySelector('#tasks li.task'); return li && li.dataset.afterError "
                              "&& li.querySelector('.problem').textContent", what="the row to say it cannot play")
        assert text.startswith("The redrawn video cannot be played here")
        board.feed({"event": "cos.record", "outcome": "submitted", "key": "uploads/sad.mp4", "task_id": failed,
                    "request_id": "r3", "level": "info", "timestamp": "2026-12-07T10:00:04Z"})
        board.feed({"event": "task.finished", "outcome": "failed", "task_id": failed, "error_code": 70000,
                    "message": "the redraw failed", "request_id": "r4", "level": "warning",
                    "timestamp": "2026-12-07T10:00:09Z"})
        text = _wait(browser, "const li = [...document.querySelectorAll('#tasks li.task')].find(li => "
                              "li.dataset.state === 'failed'); return li && li.querySelector('.problem').textContent",
                     what="the failed row")
        assert text == "Failed: 70000: the redraw failed"
        shown = browser.execute_script(
            "const li = [...document.querySelectorAll('#tasks li.task')].find(li => li.dataset.state === 'failed'); "
            "return [...li.querySelectorAll('.media, .progress-line')].map(e => e.getClientRects().length)")
        assert shown == [0, 0]          # a failed task shows no videos and no progress, only its error
        inbox.extend([{"task_id": failed, "type": "task.failed", "received_at": "2026-12-07T10:00:10Z",
                       "webhook_id": "msg_1", "verified": True, "answered": "503"},
                      {"task_id": failed, "type": "task.failed", "received_at": "2026-12-07T10:00:11Z",
                       "webhook_id": "msg_1", "verified": False, "answered": "200"}])
        items = _wait(browser, "const li = [...document.querySelectorAll('#tasks li.task')].find(li => "
                               "li.dataset.state === 'failed'); const items = li.querySelectorAll('.delivery-list li'); "
                               "return items.length === 2 && [...items].map(i => i.textContent)",
                      what="the webhook deliveries on the failed row")
        assert "signature verified (answered 503)" in items[0] and items[1].endswith("signature NOT verified")

        by_url = "1500000001-AigcVideoRedrawTask-00000000000000000000000000000003"   # from the HTTP API: no key
        shutil.copyfile(SAMPLE, tmp_path / "redrawn" / f"{by_url}.mp4")
        board.feed({"event": "api.request", "outcome": "submitted", "task_id": by_url, "request_id": "r5",
                    "level": "info", "timestamp": "2026-12-07T10:00:10Z"})
        board.feed({"event": "task.finished", "outcome": "succeeded", "task_id": by_url, "duration_s": 2.0,
                    "delivered_to": f"cos://media-1250000000/redrawn/{by_url}.mp4", "request_id": "r6",
                    "level": "info", "timestamp": "2026-12-07T10:00:12Z"})
        shown = _wait(browser, "const li = [...document.querySelectorAll('#tasks li.task')].find(li => "
                               "li.dataset.id === arguments[0]); const v = li && li.querySelector('video.after'); "
                               "return v && v.readyState >= 1 && "
                               "[li.querySelector('video.before').closest('figure').hidden, li.dataset.key]",
                      what="the redrawn video of a task without an upload", args=(by_url,))
        assert shown == [True, ""]      # only the redrawn video: its input was a URL, not a file of the folder
        assert javascript_errors(browser, network=False) == []
        if os.environ.get("CONSOLE_SCREENSHOT_DIR"):
            browser.execute_script("document.getElementById('tasks-heading').scrollIntoView()")
            browser.save_screenshot(str(Path(os.environ["CONSOLE_SCREENSHOT_DIR"]) / "console-faults.png"))
