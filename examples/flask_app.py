"""A plain ``def`` web app (Flask) with the sync ``Queue``.

    pip install flask
    flask --app examples.flask_app run
    curl -X POST localhost:5000/thumbnails -d path=/img/a.png
    curl localhost:5000/thumbnails/<job_id>

Run a worker next to it: ``pyqueue worker examples.flask_app:make_thumbnail --queue thumbnails``.
One ``Queue`` for the process: it is thread-safe (each thread gets its own
pooled connection), so the app's threads share it. The same pattern fits any
WSGI framework (Django views, Bottle, Pyramid): create the queue once at
import or app start, call ``queue.add`` in the view.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, jsonify, request

from pyqueue import Job, Queue

queue = Queue("thumbnails")  # connection=None: $PYQUEUE_REDIS_URL, $REDIS_URL, or embedded
app = Flask(__name__)


@app.post("/thumbnails")
def request_thumbnail() -> Any:
    path = request.form.get("path", "")
    if not path.startswith("/"):
        abort(422, "path must be absolute")
    job = queue.add("thumbnail", {"path": path, "size": 128}, attempts=3,
                    backoff={"type": "exponential", "delay": 5})
    return jsonify(job_id=job.id), 202


@app.get("/thumbnails/<job_id>")
def thumbnail_status(job_id: str) -> Any:
    job = queue.get_job(job_id)
    if job is None:
        abort(404)
    return jsonify(state=str(queue.get_job_state(job_id)), result=job.return_value)


def make_thumbnail(job: Job) -> dict[str, Any]:
    """The processor: a plain ``def``, run in a worker thread."""
    return {"thumbnail": job.data["path"].replace(".", f"-{job.data['size']}.", 1)}
