"""The web studio: its API through FastAPI's TestClient, and the pages in a real headless Chromium (marker browser).

Screenshots of the browser tests go to ``test-artifacts/screenshots/`` (or ``RUNYARD_SCREENSHOTS``).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import textwrap
import threading
import time
from pathlib import Path

import pytest

from runyard import Experiment, ScriptRunConfig, Workspace

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("RUNYARD_SCREENSHOTS", ROOT / "test-artifacts" / "screenshots"))
HOSTILE = '<img src=x onerror="window.__pwned=1">'


def _populate(ws: Workspace, runs: int = 300) -> dict[str, str]:
    """``runs`` finished runs with params and metrics, one with a long series, tables, an image and a hostile name."""
    exp = Experiment(ws, "digits")
    ids = {}
    for i in range(runs):
        run = exp.start_logging(display_name=f"trial-{i:03d}", outputs=False)
        run.log("lr", 0.001 * (i + 1))
        run.log("accuracy", i / runs)
        run.tag("batch", str(16 * (1 + i % 4)))
        run._ws.metadata.log_param(run.id, "batch_size", str(16 * (1 + i % 4)))
        run.complete()
        ids.setdefault("first", run.id)
        ids["last"] = run.id
    rich = exp.start_logging(display_name=HOSTILE, outputs=False)
    for step in range(5000):
        rich.log("loss", 1.0 / (step + 1) + (5.0 if step == 2500 else 0.0))
    rich.log("final_acc", 0.9731)  # logged once: a value, not a chart
    rich.log("optimizer", "adam")
    rich.log_row("confusion", label="7", predicted="1", count=3)
    rich.log_table("per class", {"class": [0, 1], "f1": [0.9, 0.8]})
    (ws.path / "img.png").write_bytes(bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cf000000030101007d9c6b2e0000000049454e44ae426082"))
    rich.log_image("curve", path=str(ws.path / "img.png"))
    rich.upload_file("outputs/model.txt", str(ws.path / "img.png"))
    rich.tag("note", HOSTILE)
    rich.complete()
    ids["rich"] = rich.id
    return ids


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    pytest.importorskip("fastapi")
    ws = Workspace(tmp_path_factory.mktemp("ui") / "ws")
    return ws, _populate(ws)


@pytest.fixture()
def client(studio):
    from fastapi.testclient import TestClient

    from runyard.ui.app import create_app

    return TestClient(create_app(studio[0]), base_url="http://127.0.0.1:5600")


def test_runs_table_api_pages_sorts_filters_and_searches(client, studio):
    ws, ids = studio
    page = client.get("/api/runs", params={"limit": 50}).json()
    assert page["total"] == 301 and len(page["runs"]) == 50
    assert page["runs"][0]["id"] == ids["rich"]  # newest first
    assert {"accuracy", "lr"} <= set(page["metric_keys"]) and "batch_size" in page["param_keys"]
    last = client.get("/api/runs", params={"limit": 50, "offset": 300}).json()
    assert [r["id"] for r in last["runs"]] == [ids["first"]]
    best = client.get("/api/runs", params={"sort": "-metric:accuracy", "limit": 3}).json()["runs"]
    assert [r["name"] for r in best] == ["trial-299", "trial-298", "trial-297"]
    by_param = client.get("/api/runs", params={"sort": "param:batch_size", "limit": 1}).json()["runs"]
    assert by_param[0]["params"]["batch_size"] == "16"
    found = client.get("/api/runs", params={"search": "trial-04"}).json()
    assert found["total"] == 10 and all(r["name"].startswith("trial-04") for r in found["runs"])
    assert client.get("/api/runs", params={"status": "Failed"}).json()["total"] == 0
    assert client.get("/api/runs", params={"experiment": "digits", "limit": 1}).json()["total"] == 301
    bad = client.get("/api/runs", params={"sort": "nonsense"})
    assert bad.status_code == 400 and "cannot sort runs by" in bad.json()["error"]
    summary = client.get("/api/summary").json()
    assert summary["experiments"] == [{"id": summary["experiments"][0]["id"], "name": "digits", "runs": 301}]


def test_run_api_details_metrics_files_and_logs(client, studio):
    ws, ids = studio
    run = client.get(f"/api/runs/{ids['rich']}").json()
    assert run["name"] == HOSTILE and run["status"] == "Completed" and run["terminal"]
    assert [t["status"] for t in run["timeline"]] == ["Queued", "Running", "Completed"]
    metrics = client.get(f"/api/runs/{ids['rich']}/metrics").json()
    loss = metrics["series"]["loss"]
    assert loss["count"] == 5000 and loss["reduced"] and len(loss["values"]) <= 2000
    assert max(loss["values"]) == pytest.approx(5.0 + 1 / 2501)  # the spike survives the reduction
    assert metrics["tables"]["confusion"] and metrics["tables"]["per class"]
    assert metrics["images"][0]["name"] == "curve"
    files = {f["path"] for f in client.get(f"/api/runs/{ids['rich']}/files").json()["files"]}
    assert "outputs/model.txt" in files
    image = client.get(f"/api/runs/{ids['rich']}/file", params={"path": metrics["images"][0]["path"]})
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert client.get(f"/api/runs/{ids['rich']}/file", params={"path": "outputs/nope"}).status_code == 404
    missing = client.get("/api/runs/no_such_run_1")
    assert missing.status_code == 404 and "error" in missing.json()
    compare = client.get("/api/compare", params={"ids": f"{ids['first']},{ids['last']}"}).json()
    assert [r["id"] for r in compare["runs"]] == [ids["first"], ids["last"]]
    assert "accuracy" in compare["runs"][0]["series"]


def test_live_metrics_bring_only_what_is_new(studio):
    """What the run page's event stream appends: per series the values logged after the page's last position, a new
    series whole, a series too far behind whole again (reduced), a note when a table changed; nothing twice."""
    from runyard.ui.app import MAX_POINTS, LiveMetrics, _metrics

    ws, _ = studio
    run = Experiment(ws, "live-api").start_logging(outputs=False)
    for i in range(5):
        run.log("loss", 1.0 / (i + 1))
    run.flush()
    page = _metrics(ws, run.id, MAX_POINTS)
    loss = page["series"]["loss"]
    assert loss["steps"] == [0, 1, 2, 3, 4] and len(loss["times"]) == 5 and loss["count"] == 5
    live = LiveMetrics(ws, run.id, {n: (s["last_id"], s["count"]) for n, s in page["series"].items()})
    assert live.poll() is None  # nothing new
    for i in range(5, 8):
        run.log("loss", 1.0 / (i + 1))
    run.log("acc", 0.5)
    run.log_row("table", a=1)
    run.flush()
    news = live.poll()
    assert news["series"]["loss"]["steps"] == [5, 6, 7] and news["series"]["loss"]["count"] == 8
    assert "replace" not in news["series"]["loss"]
    assert news["series"]["acc"]["replace"] and news["series"]["acc"]["values"] == [0.5]
    assert news["refresh"] is True
    assert live.poll() is None
    for i in range(8, 8 + MAX_POINTS + 10):  # more than one look appends: the series again, reduced
        run.log("loss", 1.0 / (i + 1))
    run.flush()
    again = live.poll()["series"]["loss"]
    assert again["replace"] and again["reduced"] and again["count"] == 8 + MAX_POINTS + 10
    run.log("loss", 0.0)
    run.flush()
    assert live.poll()["series"]["loss"]["steps"] == [8 + MAX_POINTS + 10]
    run.complete()


def test_live_stream_and_sweep_api_refuse_bad_requests(client, studio):
    ws, ids = studio
    bad = client.get(f"/api/runs/{ids['rich']}/logs", params={"metrics": "{not json"})
    assert bad.status_code == 400 and "metrics must be JSON" in bad.json()["error"]
    not_sweep = client.get(f"/api/runs/{ids['rich']}/sweep")
    assert not_sweep.status_code == 400 and "is not a sweep" in not_sweep.json()["error"]


def test_the_chart_library_comes_from_the_plotly_package(client):
    import plotly

    page = client.get("/")
    src = f"/vendor/plotly-{plotly.__version__}.min.js"
    assert f'content="{src}"' in page.text and page.headers["cache-control"] == "no-cache"
    packaged = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
    zipped = client.get(src, headers={"Accept-Encoding": "gzip"})  # httpx decodes it
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == packaged
    assert "immutable" in zipped.headers["cache-control"]
    plain = client.get(src, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.content == packaged


def test_only_the_studios_own_page_may_change_anything(studio):
    from fastapi.testclient import TestClient

    from runyard.ui.app import create_app

    ws, ids = studio
    client = TestClient(create_app(ws), base_url="http://127.0.0.1:5600")
    cancel = f"/api/runs/{ids['first']}/cancel"
    page = {"X-Runyard-Studio": "1", "Origin": "http://127.0.0.1:5600"}
    # DNS rebinding: a foreign name in Host is refused, for reads too.
    rebound = client.get("/api/summary", headers={"Host": "evil.example:5600"})
    assert rebound.status_code == 400 and "rebinding" in rebound.json()["error"]
    assert client.get("/api/summary", headers={"Host": "localhost:5600"}).status_code == 200
    # Another origin, or no page header (what a no-cors fetch or a form can send), cannot change anything.
    foreign = client.post(cancel, headers={"X-Runyard-Studio": "1", "Origin": "http://evil.example"})
    assert foreign.status_code == 403 and "evil.example" in foreign.json()["error"]
    assert client.post(cancel, headers={"Origin": "http://127.0.0.1:5600"}).status_code == 403
    assert client.post(cancel, headers={**page, "Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.post(cancel).status_code == 403  # a script: add the header
    done = client.post(cancel, headers=page)
    assert done.status_code == 409 and done.json()["error"]  # allowed; a finished run cannot be canceled
    # --allow-host adds a name.
    named = TestClient(create_app(ws, allow_hosts=("studio.lan",)), base_url="http://studio.lan:5600")
    assert named.get("/api/summary").status_code == 200


def test_a_token_guards_every_api_request(studio):
    from fastapi.testclient import TestClient

    from runyard.ui import studio_token
    from runyard.ui.app import create_app

    assert studio_token("127.0.0.1", None) is None and studio_token("127.0.0.1", "t") == "t"
    generated = studio_token("0.0.0.0", None)
    assert generated and len(generated) >= 24 and generated != studio_token("0.0.0.0", None)
    ws, ids = studio
    client = TestClient(create_app(ws, token="s3cret", host="0.0.0.0"), base_url="http://192.0.2.7:5600")
    assert client.get("/api/summary").status_code == 401
    assert client.get("/api/summary", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/summary", headers={"Authorization": "Bearer s3cret"}).json()["token"] is True
    assert client.get("/").status_code == 200  # the page itself holds no data
    opened = client.get("/?token=s3cret", follow_redirects=False)
    assert opened.status_code == 303 and "HttpOnly" in opened.headers["set-cookie"]
    assert client.get("/api/summary").status_code == 200  # the cookie now
    cancel = client.post(f"/api/runs/{ids['first']}/cancel", headers={"X-Runyard-Studio": "1"})
    assert cancel.status_code == 409


def test_file_downloads_name_any_file_safely(studio, tmp_path):
    from runyard.ui.app import content_disposition

    assert content_disposition("attachment", "model.pkl") == \
        "attachment; filename=\"model.pkl\"; filename*=UTF-8''model.pkl"
    header = content_disposition("attachment", 'résumé "v2"\r\nSet-Cookie: x.txt')
    assert "\r" not in header and "\n" not in header
    assert header.startswith('attachment; filename="r_sum_ _v2___Set-Cookie: x.txt"')
    assert header.endswith("filename*=UTF-8''r%C3%A9sum%C3%A9%20%22v2%22%0D%0ASet-Cookie%3A%20x.txt")
    header.encode("latin-1")  # what an HTTP header must be
    ws, _ = studio
    run = Experiment(ws, "files").start_logging(outputs=False)
    for name in ("日本語.txt", 'quote".txt'):
        (tmp_path / "f").write_text("content")
        run.upload_file(f"outputs/{name}", str(tmp_path / "f"))
    run.complete()
    from fastapi.testclient import TestClient

    from runyard.ui.app import create_app

    client = TestClient(create_app(ws), base_url="http://127.0.0.1:5600")
    for name in ("日本語.txt", 'quote".txt'):
        got = client.get(f"/api/runs/{run.id}/file", params={"path": f"outputs/{name}"})
        assert got.status_code == 200 and got.text == "content"
        assert got.headers["content-disposition"].endswith("UTF-8''" + __import__("urllib.parse").parse.quote(name, safe=""))


LIVE = textwrap.dedent('''
    import sys, time
    from runyard import Run
    run = Run.get_context()
    for i in range(600):
        run.log("live_loss", 1.0 / (i + 1))
        print(f"tick {i}", flush=True)
        time.sleep(0.2)
''')


def _live_run(ws, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir(exist_ok=True)
    (proj / "live.py").write_text(LIVE)
    run = Experiment(ws, "live").submit(ScriptRunConfig(str(proj), "live.py"))
    deadline = time.monotonic() + 60
    while run.get_status() != "Running":
        assert time.monotonic() < deadline, run.get_status()
        time.sleep(0.1)
    return run


def test_logs_stream_live_and_cancel_stops_a_running_run(studio, tmp_path):
    from fastapi.testclient import TestClient

    from runyard.ui.app import create_app

    ws, _ = studio
    run = _live_run(ws, tmp_path)
    client = TestClient(create_app(ws), base_url="http://127.0.0.1:5600")
    seen = []
    with client.stream("GET", f"/api/runs/{run.id}/logs", params={"rank": 0}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[6:]))
                if "tick 2" in "".join(seen):
                    break
    assert "tick 0" in "".join(seen)
    answer = client.post(f"/api/runs/{run.id}/cancel", headers={"X-Runyard-Studio": "1"}).json()
    assert answer["status"] == "Canceled"
    assert run.wait_for_completion()["status"] == "Canceled"


def test_tensorboard_serves_the_runs_logs(studio, tmp_path):
    pytest.importorskip("tensorboard")
    import urllib.request

    from runyard.ui import tensorboard as tb

    ws, _ = studio
    run = Experiment(ws, "tb").start_logging(display_name="with events")
    events = tmp_path / "events.out.tfevents.1.host"
    events.write_bytes(b"")
    run.upload_file("logs/train/events.out.tfevents.1.host", str(events))
    run.complete()
    info = tb.start(ws, [run.id])
    try:
        assert info["runs"] == ["with_events"]
        assert (Path(info["logdir"]) / "with_events" / "train" / "events.out.tfevents.1.host").exists()
        with urllib.request.urlopen(info["url"], timeout=30) as page:
            assert page.status == 200 and b"TensorBoard" in page.read()
        # The same Host/Origin rules as the studio: a rebinding Host and a cross-origin POST are refused.
        import urllib.error

        for headers, method, code in (({"Host": "evil.example"}, "GET", 400),
                                      ({"Origin": "http://evil.example"}, "POST", 403)):
            request = urllib.request.Request(info["url"] + "data/environment", headers=headers, method=method, data=
                                             b"" if method == "POST" else None)
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == code
        assert tb.start(ws, [run.id])["reused"]
    finally:
        assert tb.stop(ws, [run.id])


def test_run_details_falls_back_to_text(studio, capsys):
    from runyard.widgets import RunDetails

    ws, ids = studio
    from runyard import Run

    RunDetails(Run._by_id(ws, ids["rich"])).show()
    out = capsys.readouterr().out
    assert "Completed" in out and "loss" in out


# -- in a real browser ------------------------------------------------------------------------------------------------
def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture()
def served(studio):
    import uvicorn

    from runyard.ui.app import create_app

    ws, ids = studio
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(ws), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield ws, ids, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture()
def page(served):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no chromium (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        yield tab
        browser.close()
        assert not errors, errors


@pytest.mark.browser
def test_browser_runs_table_and_a_run_page(served, page):
    ws, ids, url = served
    page.goto(url + "/")
    page.wait_for_selector("#runs-table tbody tr")
    assert page.locator("#runs-table tbody tr").count() == 50
    assert page.inner_text("#page-info").startswith("1–50 of 3")  # 301 runs here, more once other tests ran
    page.screenshot(path=str(SHOTS / "runs-table.png"), full_page=True)
    # the hostile run name is shown as text, never run as HTML
    row = page.locator(f'tr[data-run="{ids["rich"]}"]')
    assert HOSTILE in row.inner_text()
    assert page.evaluate("window.__pwned") is None
    page.fill("#search", "trial-29")
    page.wait_for_function("document.querySelector('#page-info').textContent.includes('of 10')")
    page.goto(f"{url}/#/run/{ids['rich']}")
    chart = '[data-metric="loss"] .js-plotly-plot'
    page.wait_for_selector(chart + " .scatterlayer .trace path.js-line")  # drawn by plotly.js
    assert page.evaluate(f"document.querySelector('{chart}').data[0].x.length") > 100  # reduced: ≤ 1,000 of 5,000
    # Values logged once are values (no chart with a made-up axis); tables are tables; images are images.
    assert page.inner_text('[data-value="final_acc"]').split() == ["final_acc", "0.9731"]
    assert page.inner_text('[data-value="optimizer"]').split() == ["optimizer", "adam"]
    assert page.locator('[data-metric="final_acc"]').count() == 0
    assert "predicted" in page.inner_text('[data-table="confusion"]')
    page.locator("#files a", has_text="outputs/model.txt").wait_for()  # the file list comes after the charts
    page.locator("img.logged").wait_for()
    # The details card gives its keys their width: no key broken mid-word.
    key = page.locator("#main .card td", has_text="experiment").first
    assert key.bounding_box()["height"] < 2 * page.evaluate("parseFloat(getComputedStyle(document.body).lineHeight)")
    page.screenshot(path=str(SHOTS / "run-page.png"), full_page=True)
    # Zoom: a drag across the plot narrows the x axis to what was dragged over.
    before = page.evaluate(f"document.querySelector('{chart}')._fullLayout.xaxis.range.slice()")
    box = page.locator(chart + " .nsewdrag").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2, steps=8)
    page.mouse.up()
    page.wait_for_function(f"document.querySelector('{chart}')._fullLayout.xaxis.range[1] < {before[1] * 0.8}")
    after = page.evaluate(f"document.querySelector('{chart}')._fullLayout.xaxis.range")
    assert before[0] < after[0] < after[1] < before[1]
    # Log y, wall-time x, and smoothing (a second, smoothed line over the faded values).
    page.check("#log-y")
    page.wait_for_function(f"document.querySelector('{chart}')._fullLayout.yaxis.type === 'log'")
    page.select_option("#x-axis", "wall")
    page.wait_for_function(f"document.querySelector('{chart}')._fullLayout.xaxis.type === 'date'")
    page.fill("#smoothing", "0.9")
    page.wait_for_function(f"document.querySelector('{chart}').data[1].visible === true")
    raw, smooth = page.evaluate(f"[1, 2].map(i => document.querySelector('{chart}').data[i - 1].y.slice(0, 200))")
    assert len(raw) == len(smooth) and max(smooth) < max(raw)  # the spike is averaged down
    page.screenshot(path=str(SHOTS / "run-page-log-smoothed.png"), full_page=True)
    page.select_option("#x-axis", "step")
    page.fill("#smoothing", "0")
    page.uncheck("#log-y")
    assert page.evaluate("window.__pwned") is None


@pytest.mark.browser
def test_browser_live_log_and_cancel(served, page, tmp_path):
    ws, _, url = served
    run = _live_run(ws, tmp_path)
    page.goto(f"{url}/#/run/{run.id}")
    page.wait_for_function("document.querySelector('#log') && document.querySelector('#log').textContent.includes('tick 3')",
                           timeout=30000)
    chart = '[data-metric="live_loss"] .js-plotly-plot'
    page.wait_for_selector(chart + " .scatterlayer .trace path.js-line", timeout=30000)
    page.evaluate(f"document.querySelector('{chart}').dataset.mark = 'first drawing'")
    seen = page.evaluate(f"document.querySelector('{chart}').data[0].x.length")
    # The chart grows while the run goes on: new points appended from the page's event stream, the chart kept.
    page.wait_for_function(f"document.querySelector('{chart}').data[0].x.length >= {seen + 10}", timeout=30000)
    assert page.evaluate(f"document.querySelector('{chart}').dataset.mark") == "first drawing"
    grown = page.evaluate(f"document.querySelector('{chart}').data[0]")
    assert grown["x"] == list(range(len(grown["x"])))  # every step once, in order: nothing lost or doubled
    assert grown["y"] == pytest.approx([1.0 / (i + 1) for i in range(len(grown["x"]))])
    page.screenshot(path=str(SHOTS / "live-run.png"), full_page=True)
    page.on("dialog", lambda d: d.dismiss())
    page.click("#cancel")
    page.wait_for_selector('h2 [data-status="Canceled"]', timeout=30000)
    assert run.wait_for_completion()["status"] == "Canceled"
    page.screenshot(path=str(SHOTS / "canceled-run.png"), full_page=True)


CROSS_SITE_PAGE = """<!doctype html><script>
window.attack = async (studio, runId) => {
  const out = {};
  try { await fetch(studio + "/api/runs/" + runId + "/cancel", {method: "POST", mode: "no-cors"}); out.noCors = "sent"; }
  catch (e) { out.noCors = "blocked"; }
  try { await fetch(studio + "/api/runs/" + runId + "/cancel", {method: "POST", headers: {"X-Runyard-Studio": "1"}});
        out.withHeader = "answered"; }
  catch (e) { out.withHeader = "blocked"; }
  try { const r = await fetch(studio + "/api/summary"); out.read = await r.text(); }
  catch (e) { out.read = "blocked"; }
  return out;
};
</script>"""


@pytest.mark.browser
def test_browser_another_sites_page_cannot_cancel_or_read(served, page, tmp_path):
    """A page of another origin (here: another local port) tries what a hostile page can: a no-cors POST (sent,
    but refused for its origin and missing header), a POST with the header (its CORS preflight is never granted) and a
    read (no CORS: the browser hides the answer). The run goes on; the page learns nothing."""
    import http.server

    ws, _, url = served
    run = _live_run(ws, tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(CROSS_SITE_PAGE)
    handler = lambda *a, **kw: http.server.SimpleHTTPRequestHandler(*a, directory=str(site), **kw)  # noqa: E731
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://127.0.0.1:{other.server_address[1]}/index.html")
        out = page.evaluate("([studio, id]) => window.attack(studio, id)", [url, run.id])
    finally:
        other.shutdown()
    assert out == {"noCors": "sent", "withHeader": "blocked", "read": "blocked"}, out
    time.sleep(1)  # a cancel would have landed by now; the run must still be going
    assert run.get_status() == "Running"
    run.cancel()


@pytest.mark.browser
def test_browser_dns_rebinding_gets_400(served):
    """Chromium resolves evil.example to 127.0.0.1 (as a rebinding attack makes it): the studio refuses that Host."""
    chromium = _chromium()
    playwright = pytest.importorskip("playwright.sync_api")
    _, _, url = served
    port = url.rsplit(":", 1)[1]
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--host-resolver-rules=MAP evil.example 127.0.0.1"])
        tab = browser.new_page()
        answer = tab.goto(f"http://evil.example:{port}/api/summary")
        assert answer.status == 400 and "rebinding" in tab.content()
        assert tab.goto(f"{url}/api/summary").status == 200
        browser.close()


def test_runyard_ui_command_serves_the_page_and_the_api(studio):
    import subprocess
    import sys
    import urllib.request

    ws, _ = studio
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "runyard", "ui", "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, **ws.environment_variables()})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/summary", timeout=5) as r:
                    summary = json.loads(r.read())
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() is not None else ""
                time.sleep(0.2)
        assert summary["token"] is False and summary["experiments"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert b"runyard studio" in r.read()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/app.js", timeout=5) as r:
            assert b"textContent" in r.read()
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_sweeps_children_are_ranked_by_its_primary_metric(client, studio):
    ws, _ = studio
    parent = Experiment(ws, "sweep").start_logging(display_name="sweep", outputs=False)
    parent.add_properties({"primary_metric_config": json.dumps({"name": "acc", "goal": "maximize"})})
    for i, acc in enumerate([0.5, 0.9, 0.7]):
        child = parent.child_run(name=f"trial {i}")
        child.log("acc", acc)
        child.complete()
    parent.complete()
    run = client.get(f"/api/runs/{parent.id}").json()
    assert run["children"] == 3 and run["primary_metric"] == {"name": "acc", "goal": "maximize"}
    board = client.get("/api/runs", params={"parent": parent.id, "sort": "-metric:acc"}).json()
    assert [r["metrics"]["acc"] for r in board["runs"]] == [0.9, 0.7, 0.5] and board["total"] == 3
    top = client.get("/api/runs", params={"experiment": "sweep"}).json()
    assert [r["id"] for r in top["runs"]] == [parent.id]  # children are not listed at the top level


@pytest.mark.browser
def test_browser_compare_overlays_runs(served, page):
    """The same metric of several runs on one chart, one colour and a legend entry per run (names as text), the
    parameters beside it."""
    ws, _, url = served
    exp = Experiment(ws, "curves")
    ids = []
    for k, name in enumerate(["curve-a", "curve-b", "curve-c", HOSTILE]):
        run = exp.start_logging(display_name=name, outputs=False)
        run.log("lr", 0.1 * (k + 1))
        for step in range(60):
            run.log("loss", (k + 1) / (step + 1))
        run.complete()
        ids.append(run.id)
    page.goto(f"{url}/#/compare/{','.join(ids)}")
    chart = '[data-metric="loss"] .js-plotly-plot'
    page.wait_for_selector(chart + " .legend .traces")
    assert page.locator(chart + " .legend .traces").count() == 4
    legend = page.evaluate(f"document.querySelector('{chart} .legend').textContent")
    assert "curve-a" in legend and HOSTILE in legend  # shown as text
    colours = page.evaluate(f"document.querySelector('{chart}').data.filter(t => t.showlegend).map(t => t.line.color)")
    assert len(set(colours)) == 4
    assert page.locator('#compare-params [data-value="lr"] td').count() == 5  # a value per run, not a chart
    assert page.locator('[data-metric="lr"]').count() == 0
    assert page.evaluate("window.__pwned") is None
    page.screenshot(path=str(SHOTS / "compare.png"), full_page=True)


SWEEP_TRAIN = textwrap.dedent("""
    import argparse, math, time
    from runyard import Run
    p = argparse.ArgumentParser()
    p.add_argument("--lr", type=float)
    p.add_argument("--opt", default="sgd")
    a = p.parse_args()
    run = Run.get_context()
    final = 1 - (math.log10(a.lr) + 2) ** 2 / 4 - (0.1 if a.opt == "sgd" else 0)
    for i in range(1, 9):
        run.log("accuracy", final * (1 - math.exp(-i / 2)))
        run.flush()
        time.sleep(0.3)
""")


@pytest.mark.browser
def test_browser_sweep_page(served, page, tmp_path):
    """A HyperDrive parent: every trial's primary metric on one chart, hyperparameters → metric as parallel
    coordinates, the best trial highlighted, the ones the policy stopped marked."""
    from runyard.hyperdrive import BanditPolicy, GridParameterSampling, HyperDriveConfig, choice
    from runyard.hyperdrive.config import STOPPED_BY_TAG

    ws, _, url = served
    proj = tmp_path / "sweep"
    proj.mkdir()
    (proj / "train.py").write_text(SWEEP_TRAIN)
    space = {"--lr": choice(0.01, 0.1, 1e-5, 1e-6), "--opt": choice("adam", "sgd")}
    hd = HyperDriveConfig(run_config=ScriptRunConfig(str(proj), "train.py"),
                          hyperparameter_sampling=GridParameterSampling(space), primary_metric_name="accuracy",
                          primary_metric_goal="MAXIMIZE", max_total_runs=8, max_concurrent_runs=2,
                          policy=BanditPolicy(evaluation_interval=1, slack_factor=0.1, delay_evaluation=2))
    sweep = Experiment(ws, "sweep").submit(hd)
    assert sweep.wait_for_completion()["status"] == "Completed"
    best = sweep.get_best_run_by_primary_metric().id
    stopped = {c.id for c in sweep.get_children() if c.get_tags().get(STOPPED_BY_TAG)}
    assert stopped, "1e-5 and 1e-6 are far below the best: the policy stops them"
    page.goto(f"{url}/#/run/{sweep.id}")
    page.wait_for_selector("#sweep-parallel .parcoords", timeout=30000)
    assert page.evaluate("document.querySelector('#sweep-parallel').data[0].type") == "parcoords"
    labels = page.evaluate("document.querySelector('#sweep-parallel').data[0].dimensions.map(d => d.label)")
    assert labels == ["--lr", "--opt", "accuracy"]
    page.wait_for_selector("#sweep-metric .scatterlayer .trace")
    lines = page.evaluate("document.querySelector('#sweep-metric').data.filter(t => t.showlegend)")
    assert len(lines) == 8
    widest = max(lines, key=lambda t: t["line"]["width"])
    assert widest["meta"] == best and widest["name"].startswith("★")
    assert {t["meta"] for t in lines if t["line"].get("dash") == "dot"} == stopped
    assert page.get_attribute("#children-table tr.best", "data-trial") == best
    marked = page.eval_on_selector_all("#children-table tr[data-stopped]", "rows => rows.map(r => r.dataset.trial)")
    assert set(marked) == stopped
    page.screenshot(path=str(SHOTS / "sweep.png"), full_page=True)


def test_azure_tensorboard_serves_runs_and_exports_metrics(studio, tmp_path):
    """``from azureml.tensorboard import Tensorboard`` after `runyard migrate`: TensorBoard over runs' logs/ (a
    running run's newer event files copied in while it runs), and a run's metrics exported as event files."""
    import urllib.request

    from runyard import migrate
    from runyard.tensorboard import Tensorboard
    from runyard.tensorboard import REFRESH_SECONDS
    from runyard.tensorboard.export import export_to_tensorboard

    source = "from azureml.tensorboard import Tensorboard\nfrom azureml.tensorboard.export import export_to_tensorboard\n"
    new_text, changed, problems = migrate.migrate_source(source)
    assert new_text == source.replace("azureml.tensorboard", "runyard.tensorboard") and not problems
    ws, _ = studio
    run = Experiment(ws, "tb-azure").start_logging(display_name="exported")
    for step in range(5):
        run.log("loss", 1.0 / (step + 1))
    run.log("note", "not a number")
    written = export_to_tensorboard(run, str(tmp_path / "events"))
    assert written == ["loss"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "events"))
    events.Reload()
    assert [round(e.value, 6) for e in events.Scalars("loss")] == [round(1 / (s + 1), 6) for s in range(5)]
    assert [e.step for e in events.Scalars("loss")] == [0, 1, 2, 3, 4]
    assert export_to_tensorboard({"acc": [0.5, 0.75], "name": "x"}, str(tmp_path / "dict"), name="run1") == ["acc"]

    # The run is still going: its event files as the script uploads them, served live.
    run.upload_file("logs/train/events.out.tfevents.1.host", str(next((tmp_path / "events").glob("events.*"))))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tb = Tensorboard([run], local_root=str(tmp_path / "tb"), port=port)
    try:
        url = tb.start(start_browser=False)
        assert url == f"http://127.0.0.1:{port}/"
        with urllib.request.urlopen(url + "data/runs", timeout=30) as answer:
            assert "exported/train" in json.loads(answer.read())
        run.upload_file("logs/eval/events.out.tfevents.2.host", str(next((tmp_path / "events").glob("events.*"))))
        deadline = time.monotonic() + REFRESH_SECONDS * 2 + 30
        while True:  # copied in by the refresher, then found by TensorBoard's reload
            with urllib.request.urlopen(url + "data/runs", timeout=30) as answer:
                if "exported/eval" in json.loads(answer.read()):
                    break
            assert time.monotonic() < deadline, "the running run's new event file never showed"
            time.sleep(0.5)
        assert list((tmp_path / "tb").glob("*/logs/exported/eval/events.*"))  # under local_root
        busy = Tensorboard([run], port=port)
        with pytest.raises(Exception, match=f"port {port} is in use"):
            busy.start()
    finally:
        tb.stop()
        run.complete()
    with pytest.raises(Exception):
        urllib.request.urlopen(url, timeout=5)
