"""FastAPI recipe: enqueue in a route, one ``AsyncQueue`` per app (lifespan), job status.

    pip install fastapi uvicorn
    uvicorn examples.fastapi_app:app
    curl -X POST localhost:8000/reports -H 'content-type: application/json' \
         -d '{"month": "2026-11"}'
    curl localhost:8000/reports/<job_id>

Run a worker next to it: ``pyqueue worker examples.fastapi_app:build_report --queue reports``.
The queue is opened once when the app starts and closed when it stops (the
lifespan), and shared by every request: an ``AsyncQueue`` is safe to share
across the app's tasks. The same ``month`` asked twice is one job (``job_id``).
With ``pip install 'pyqueue-redis[web]'`` the dashboard is mounted at ``/queues``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

from pyqueue import AsyncQueue, Job

QUEUE = "reports"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # connection=None: $PYQUEUE_REDIS_URL, else $REDIS_URL, else the embedded server
    async with AsyncQueue(QUEUE, default_job_options={"attempts": 3}) as queue:
        app.state.queue = queue
        yield


app = FastAPI(lifespan=lifespan)

try:  # the dashboard, when pyqueue's web extra is installed
    from pyqueue.web import create_app
except ImportError:
    pass
else:
    app.mount("/queues", create_app(read_only=True))


class ReportRequest(BaseModel):
    month: str


@app.post("/reports", status_code=202)
async def request_report(req: ReportRequest, request: Request) -> dict[str, str]:
    queue: AsyncQueue = request.app.state.queue
    try:
        job = await queue.add("monthly", {"month": req.month}, job_id=f"report-{req.month}")
    except ValueError as exc:  # pyqueue's argument errors: a bad id, data too large, ...
        raise HTTPException(422, str(exc)) from None
    return {"job_id": job.id}


@app.get("/reports/{job_id}")
async def report_status(job_id: str, request: Request) -> dict[str, Any]:
    queue: AsyncQueue = request.app.state.queue
    job = await queue.get_job(job_id)
    if job is None:
        raise HTTPException(404, "no such report")
    return {"state": await queue.get_job_state(job_id), "result": job.return_value}


async def build_report(job: Job) -> dict[str, Any]:
    """The processor (``pyqueue worker examples.fastapi_app:build_report --queue reports``)."""
    return {"month": job.data["month"], "rows": 42}
