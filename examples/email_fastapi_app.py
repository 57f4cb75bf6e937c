"""A FastAPI app that enqueues mail for the EmailWorker (``pip install fastapi uvicorn``).

    uvicorn examples.email_fastapi_app:app
    curl -X POST localhost:8000/otp -H 'content-type: application/json' \
         -d '{"email": "ada@example.com", "name": "Ada"}'

Run the worker next to it: ``pyqueue worker examples.email_worker:worker``.
Enqueueing is idempotent: the same ``mail_uid`` is sent once, however often
the request is retried.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from pyqueue import AsyncQueue
from pyqueue.email import AsyncSuppressions, enqueue_email, set_send_rate

QUEUE = "email"
state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with AsyncQueue(QUEUE) as queue:
        await set_send_rate(queue, 14)             # provider limit: 14 mails/s, evenly
        await queue.set_group_concurrency(2)       # at most 2 at once per domain group
        state["queue"] = queue
        state["suppressions"] = AsyncSuppressions(QUEUE, connection=queue.client)
        yield


app = FastAPI(lifespan=lifespan)


class OtpRequest(BaseModel):
    email: str
    name: str = "there"
    request_id: str | None = None   # send the same id again: the mail goes out once


class NewsletterRequest(BaseModel):
    issue: str
    subject: str
    html: str
    recipients: list[str]


@app.post("/otp")
async def send_otp(req: OtpRequest) -> dict[str, str]:
    code = f"{secrets.randbelow(10**6):06d}"
    uid = f"otp-{req.request_id or secrets.token_hex(8)}"
    try:
        job = await enqueue_email(state["queue"], to=req.email, template="otp",
                                  variables={"code": code, "name": req.name}, mail_uid=uid,
                                  category="transactional")
    except ValueError as exc:              # bad address, CR/LF, several recipients
        raise HTTPException(422, str(exc)) from None
    return {"job_id": job.id}


@app.post("/newsletter")
async def send_newsletter(req: NewsletterRequest) -> dict[str, int]:
    queued = 0
    for address in req.recipients:
        try:
            await enqueue_email(state["queue"], to=address, subject=req.subject,
                                html=req.html, mail_uid=f"news-{req.issue}-{address}",
                                category="bulk", group_by_domain=True)
        except ValueError:
            continue
        queued += 1
    return {"queued": queued}


@app.post("/unsubscribe")
async def unsubscribe(email: str) -> dict[str, str]:
    await state["suppressions"].add(email, "unsubscribed")
    return {"status": "ok"}
