"""`smpp serve`: the real HTTP server (uvicorn, on a free local port) over a finished small run
answers what `smpp predict` answers, names the post and field of bad input, stays correct under
concurrent requests, and reports the run it serves."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import polars as pl
import pytest
import uvicorn

from test_predict import run  # noqa: F401  (the finished small run of test_predict, a fixture)

from featurestore.new_posts import stored_records
from pipelines import cli
from pipelines.analysis.similar import similar_posts
from pipelines.predict import predict_posts
from pipelines.predictor import Predictor
from pipelines.serve import MAX_POSTS, create_app

NEW_POST = {"Uid": "999999@N99", "Postdate": "1455000000", "Title": "sunset #beach", "Alltags": "sunset beach sea",
            "Mediatype": "photo", "Category": "Travel&Active&Sports", "Subcategory": "Beach", "Concept": "sunset",
            "photo_count": 120, "ispro": 0, "timezone_offset": "+01:00", "image": "nowhere.jpg"}


@pytest.fixture(scope="module")
def test_posts(run):  # noqa: F811
    """(pids, stored predictions) of the first 8 test-split posts of the run."""
    paths, _ = run
    preds = pl.read_parquet(paths.table("predictions_stack")).filter(pl.col("split") == "test").sort("pid")[:8]
    return [int(p) for p in preds["pid"]], preds


@pytest.fixture(scope="module")
def client(run):  # noqa: F811
    """An httpx client of the service, run by uvicorn in a background thread on a free port."""
    paths, _ = run
    predictor = Predictor.open(paths.root, paths.smpd_dir, image_process=True)  # as `smpp serve` opens it
    app = create_app(predictor)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # port 0: the OS picks a free one; uvicorn serves on this very socket
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    with httpx.Client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", timeout=300) as c:
        yield c
    server.should_exit = True
    thread.join(30)
    sock.close()
    predictor.close()


def _rows(resp: httpx.Response) -> list[dict]:
    assert resp.status_code == 200, resp.text
    return resp.json()["predictions"]


def test_predictions_equal_smpp_predict_and_the_pipeline(run, client, test_posts, tmp_path):  # noqa: F811
    paths, _ = run
    pids, stored = test_posts
    records = stored_records(paths.smpd_dir, pids[:3]) + [NEW_POST]
    got = _rows(client.post("/predict", json=records))
    # the stored posts, replayed as new, get the batch pipeline's predictions and intervals
    assert [r["pid"] for r in got[:3]] == pids[:3]
    for col in ("pred", "interval_lo", "interval_hi"):
        assert [r[col] for r in got[:3]] == pytest.approx(stored[col][:3].to_list(), abs=1e-9), col
    # all of them (the new post too) what `smpp predict` and predict_posts give
    (tmp_path / "posts.json").write_text(json.dumps(records))
    assert cli.main(["predict", "--post", str(tmp_path / "posts.json"), "--root", str(paths.root),
                     "--out", str(tmp_path / "p.csv")]) == 0
    for want in (pl.read_csv(tmp_path / "p.csv", schema_overrides={"warnings": pl.String}).fill_null(""),
                 predict_posts(paths, records, json.loads((paths.root / "run.json").read_text())["params"])):
        assert [r["pid"] for r in got] == want["pid"].to_list()
        for col in ("pred", "interval_lo", "interval_hi"):
            assert [r[col] for r in got] == pytest.approx(want[col].to_list(), abs=1e-9), col
        assert [r["image_found"] for r in got] == want["image_found"].to_list()
        assert [";".join(r["warnings"]) for r in got] == want["warnings"].to_list()
    new = got[3]
    assert new["image_found"] is False and "image_missing" in new["warnings"] and "unknown_user" in new["warnings"]
    assert new["interval_lo"] < new["pred"] < new["interval_hi"]


def test_one_post_object_is_one_prediction(client, test_posts):
    resp = client.post("/predict", json=NEW_POST)
    (row,) = _rows(resp)
    assert set(row) == {"pid", "pred", "interval_lo", "interval_hi", "image_found", "warnings"}
    assert resp.json()["model_version"] == client.get("/health").json()["model_version"]


@pytest.mark.parametrize("body,status,problems,error", [
    ([NEW_POST, {"Uid": 5, "Postdate": "yesterday"}], 422, [(1, "Uid"), (1, "Postdate")],
     "post 1: field 'Uid': expected a Uid '<digits>@N<digits>', got 5"),
    ({"Postdate": "1455000000"}, 422, [(0, "Uid")], "post 0: field 'Uid' is required"),
    ([NEW_POST, NEW_POST | {"Titel": "x"}], 422, [(1, "Titel")], "post 1: unknown field 'Titel'"),
    ([NEW_POST, NEW_POST | {"Postdate": 1455000000000}], 422, [(1, "Postdate")], "looks like milliseconds"),
    ([NEW_POST, 3], 422, [(1, None)], "post 1: expected a JSON object with SMPD fields, got int"),
    ([], 422, [], "no posts given"),
    (5, 400, None, "expected a JSON object (one post) or an array of posts, got int"),
    (b'{"Uid": "1@N1",\n "Postdate" 1455000000}', 400, None, "invalid JSON: line 2 column 13"),
    (b'\xff\xfe{}', 400, None, "not UTF-8"),
    ([{}] * (MAX_POSTS + 1), 413, None, f"at most {MAX_POSTS}"),
])
def test_bad_input_is_a_4xx_naming_the_post_and_field(client, body, status, problems, error):
    resp = client.post("/predict", content=body if isinstance(body, bytes) else json.dumps(body))
    assert resp.status_code == status, resp.text
    got = resp.json()
    assert error in got["error"]
    if problems is None:
        assert "problems" not in got
    else:
        assert [(p["post"], p["field"]) for p in got["problems"]] == problems
        assert all(p["message"].startswith(f"post {p['post']}: ") for p in got["problems"])


def test_bad_query_parameters_are_422(client, test_posts):
    pids, _ = test_posts
    assert client.get("/similar/abc").status_code == 422
    resp = client.get(f"/similar/{pids[0]}", params={"k": 0})
    assert resp.status_code == 422 and "k" in resp.json()["error"]
    assert client.get("/health").json()["status"] == "ok"  # still serving


def test_concurrent_requests_answer_as_sequential_ones(run, client, test_posts):  # noqa: F811
    paths, _ = run
    pids, _ = test_posts
    records = stored_records(paths.smpd_dir, pids)
    bodies = [[records[i]] if i % 2 else records[i:i + 3] + [NEW_POST] for i in range(8)]
    sequential = [_rows(client.post("/predict", json=b)) for b in bodies]
    start = threading.Barrier(8)

    def send(body):
        start.wait()  # all 8 requests in flight together
        return _rows(client.post("/predict", json=body))

    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(send, bodies))
    assert concurrent == sequential


def test_health_summarises_the_run(run, client):  # noqa: F811
    paths, _ = run
    h = client.get("/health").json()
    manifest = json.loads((paths.root / "run.json").read_text())
    assert h["status"] == "ok" and h["root"] == str(paths.root)
    assert h["stored_posts"] == pl.read_parquet(paths.table("posts")).height
    assert h["model_version"] == hashlib.sha256(paths.stack_model.read_bytes()).hexdigest()[:12]
    assert h["input_fingerprint"] == manifest["inputs"]["hash"] and h["finished_at"] == manifest["finished_at"]
    assert len(h["params_hash"]) == 12 and len(h["run_id"]) == 12


def test_similar_posts_and_an_unknown_pid(run, client, test_posts):  # noqa: F811
    paths, _ = run
    pid = test_posts[0][0]
    resp = client.get(f"/similar/{pid}", params={"k": 5})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    want = similar_posts(paths.root, pid, k=5)
    assert body["query"]["pid"] == pid and body["k"] == 5
    assert [r["pid"] for r in body["similar"]] == want["pid"].to_list()[1:]
    sims = [r["similarity"] for r in body["similar"]]
    assert len(sims) == 5 and sims == sorted(sims, reverse=True)
    assert {"pid", "similarity", "label", "prediction"} <= set(body["similar"][0])
    assert all(isinstance(r["prediction"], float) for r in body["similar"])
    unknown = int(pl.read_parquet(paths.table("posts"))["pid"].max()) + 1000
    resp = client.get(f"/similar/{unknown}")
    assert resp.status_code == 404 and str(unknown) in resp.json()["error"]


def test_smpp_serve_command_starts_and_refuses_an_unfinished_run(run, tmp_path):  # noqa: F811
    paths, _ = run
    assert cli.main(["serve", "--root", str(tmp_path / "nowhere")]) == 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", "serve", "--root", str(paths.root),
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "smpp serve did not answer /health"
            try:
                h = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert h.status_code == 200 and h.json()["stored_posts"] > 0
        children = _children(proc.pid)  # the image helper and multiprocessing's resource tracker
        assert sum("spawn_main" in _cmdline(c) for c in children) == 1, "one image helper process"
    finally:
        proc.terminate()
        proc.wait(30)
    # uvicorn ends the process by re-raising SIGTERM after its shutdown: the app's shutdown stops the helper
    for child in children:
        _assert_gone(child)


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _assert_gone(pid: int, within_s: float = 10.0) -> None:
    """Process ``pid`` ends within ``within_s`` (an unreaped zombie counts as ended)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return
        if state == "Z":
            return
        time.sleep(0.1)
    raise AssertionError(f"process {pid} still runs {within_s} s after its parent ended")


def test_the_image_helper_ends_with_a_killed_server():
    """A server killed outright (SIGKILL: no shutdown runs) does not leave its helper process behind."""
    code = ("import time; from pipelines.online_features import _image_process; "
            "pool = _image_process(); print(next(iter(pool._processes)), flush=True); time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        helper = int(parent.stdout.readline())
        assert helper in _children(parent.pid)
    finally:
        parent.kill()
        parent.wait(30)
    _assert_gone(helper)


def test_only_serve_needs_fastapi(monkeypatch, capsys):
    code = ("import sys, pipelines.cli, pipelines.predict; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'uvicorn', 'starlette')))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"
    import pipelines

    monkeypatch.delitem(sys.modules, "pipelines.serve")
    monkeypatch.delattr(pipelines, "serve")
    monkeypatch.setitem(sys.modules, "fastapi", None)  # as if the extra were not installed
    assert cli.main(["serve", "--root", "."]) == 2
    assert "smpp serve: fastapi is not installed: pip install 'smpp[serve]'" in capsys.readouterr().err
