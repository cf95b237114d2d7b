"""``smpp serve``: predictions for unpublished posts over HTTP, from a finished run loaded once.

  smpp serve --root W [--smpd-dir D] [--params P] [--host 127.0.0.1] [--port 8000]

  POST /predict        body: one post (a JSON object, as for `smpp predict --post`) or an array of them
                       -> {"predictions": [{pid, pred, interval_lo, interval_hi, image_found,
                           warnings: [codes]}, ...], "model_version": ...}
  GET  /similar/{pid}  ?k=10: the k stored posts most similar to stored post pid (404: no such post)
  GET  /health         {"status": "ok", run id, input fingerprint, params hash, model version, ...}

Errors are JSON ``{"error": "<one line>", ...}``: malformed JSON 400; a bad post 422, with
``problems``: [{post (0-based index), field, message}]; more than MAX_POSTS posts 413.
The run is opened once (``pipelines.predictor.Predictor``) before the port is bound, so the
service answers /health only when it can predict. Blocking work runs in the threadpool; the
Predictor serialises the feature build and model call (see its docstring); a request's images are
measured by one helper process meanwhile (``Predictor.open(image_process=True)``).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import math
from pathlib import Path

import polars as pl
import uvicorn
from fastapi import FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from pipelines.post_input import PostInputError
from pipelines.predictor import Predictor

log = logging.getLogger(__name__)

MAX_POSTS = 1000  # per request: a bigger batch would hold the model lock for minutes


class BadRequest(Exception):
    def __init__(self, status: int, message: str, problems: list[dict] | None = None) -> None:
        super().__init__(message)
        self.status, self.problems = status, problems


def parse_body(body: bytes) -> list:
    """The posts of a request body: one JSON object (one post) or a non-empty array of them."""
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise BadRequest(400, f"request body is not UTF-8 text (bad byte at offset {e.start})") from None
    except json.JSONDecodeError as e:
        raise BadRequest(400, f"invalid JSON: line {e.lineno} column {e.colno}: {e.msg}") from None
    if isinstance(data, dict):
        return [data]
    if not isinstance(data, list):
        raise BadRequest(400, f"expected a JSON object (one post) or an array of posts, got {type(data).__name__}")
    if len(data) > MAX_POSTS:
        raise BadRequest(413, f"{len(data)} posts in one request; at most {MAX_POSTS}: split the batch")
    return data


def input_problems(error: PostInputError) -> list[dict]:
    """[{post, field, message}] of a ``PostInputError`` (field None where the problem is the whole post)."""
    return list(error.problems)


def prediction_rows(preds: pl.DataFrame) -> list[dict]:
    """The JSON rows of ``Predictor.predict``'s frame: warnings as a list of codes."""
    return [r | {"warnings": r["warnings"].split(";") if r["warnings"] else []} for r in preds.to_dicts()]


def json_rows(df: pl.DataFrame) -> list[dict]:
    """Rows with NaN as null and datetimes as ISO 8601 text (JSON has neither)."""
    def clean(v):
        if isinstance(v, float) and math.isnan(v):
            return None
        return v.isoformat() if hasattr(v, "isoformat") else v
    return [{k: clean(v) for k, v in r.items()} for r in df.to_dicts()]


def create_app(predictor: Predictor, *, close_on_shutdown: bool = False) -> FastAPI:
    """The service over one loaded ``predictor``; ``close_on_shutdown``: the app's shutdown closes it
    (stops its helper process: uvicorn ends the process by re-raising SIGTERM after a graceful shutdown,
    so code after ``uvicorn.run`` does not run)."""
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        if close_on_shutdown:
            predictor.close()

    app = FastAPI(title="smpp", description="Social-media popularity prediction", version=predictor.model.version,
                  lifespan=lifespan)

    @app.exception_handler(BadRequest)
    def bad_request(_: Request, e: BadRequest) -> JSONResponse:
        return JSONResponse({"error": str(e)} | ({"problems": e.problems} if e.problems is not None else {}),
                            status_code=e.status)

    @app.exception_handler(RequestValidationError)
    def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        lines = [f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()]
        return JSONResponse({"error": "; ".join(lines)}, status_code=422)

    @app.post("/predict")
    async def predict(request: Request):
        records = parse_body(await request.body())
        try:
            preds = await run_in_threadpool(predictor.predict, records)
        except PostInputError as e:
            raise BadRequest(422, " ".join(str(e).split()), input_problems(e)) from None
        return {"predictions": prediction_rows(preds), "model_version": predictor.model.version}

    @app.get("/similar/{pid}")
    def similar(pid: int, k: int = Query(10, ge=1, le=1000)):
        try:
            df = predictor.similar(pid, k)
        except KeyError:
            raise BadRequest(404, f"post {pid} is not a stored post of this run") from None
        rows = json_rows(df.drop("error"))
        return {"query": rows[0], "k": k, "similar": rows[1:]}

    @app.get("/health")
    def health():
        return {"status": "ok"} | predictor.health()

    return app


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="smpp serve", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=Path("."), help="work root of a finished run (default: .)")
    ap.add_argument("--smpd-dir", type=Path, default=None,
                    help="SMPD directory of that run (image paths; default: the one its manifest records)")
    ap.add_argument("--params", type=Path, default=None,
                    help="params of that run (default: the ones its manifest records; others are refused)")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    args = ap.parse_args(argv)
    predictor = Predictor.open(args.root, args.smpd_dir, args.params, image_process=True)  # refuses an incomplete run
    # The loaded run is millions of long-lived objects (stored rows by user, the model): moved out of the
    # collector's generations, a request's garbage no longer triggers a full pass over them.
    gc.collect()
    gc.freeze()
    h = predictor.health()
    log.info("serving the run in %s (model %s, %d stored posts) on http://%s:%d", args.root, h["model_version"],
             h["stored_posts"], args.host, args.port)
    try:
        uvicorn.run(create_app(predictor, close_on_shutdown=True), host=args.host, port=args.port, log_level="info")
    finally:
        predictor.close()  # where uvicorn returns (e.g. the port was taken)
    return 0
