"""Flows and durable steps: an invoice email sent only after the payment job
completed, and a 3-step onboarding job that sleeps between steps without
holding a worker (an Inngest-style durable workflow, on Redis alone).

Run:  REDIS_URL=redis://localhost:6379/0 python examples/flows.py
"""

import asyncio
import os

from pyqueue import AsyncFlowProducer, AsyncJob, AsyncQueue, Worker

REDIS_URL = os.environ.get("REDIS_URL")  # None: pyqueue's default
PAYMENTS, EMAIL, ONBOARDING = "flows-payments", "flows-email", "flows-onboarding"


async def charge(job: AsyncJob) -> dict:
    """The child: charge the card (here: pretend)."""
    return {"charge_id": f"ch_{job.data['order']}", "amount": job.data["amount"]}


async def send_invoice(job: AsyncJob) -> str:
    """The parent: runs only once its children completed; reads their results."""
    (payment,) = (await job.get_children_values()).values()
    return f"invoice for order {job.data['order']} sent ({payment['charge_id']})"


CALLS: list[str] = []


def create_account(email: str) -> dict:
    CALLS.append("create_account")
    return {"user_id": 42, "email": email}


async def onboarding(job: AsyncJob) -> str:
    """Three durable steps with sleeps between them. Each run of this function
    starts from the top; finished steps return their stored result at once, and
    a sleep suspends the job as delayed (no worker slot held) until it is due."""
    user = await job.step("create-account", create_account, job.data["email"])
    await job.sleep("wait-before-welcome", 0.5)  # in real life: hours or days
    await job.step("send-welcome", lambda: CALLS.append("send_welcome") or "sent")
    await job.sleep("wait-before-tips", 0.5)
    await job.step("send-tips", lambda: CALLS.append("send_tips") or "sent")
    return f"user {user['user_id']} onboarded"


async def main() -> None:
    async with AsyncFlowProducer(connection=REDIS_URL) as flows, \
            AsyncQueue(ONBOARDING, connection=REDIS_URL) as onboard:
        node = await flows.add({
            "name": "send-invoice", "queue_name": EMAIL, "data": {"order": 7},
            "children": [{"name": "charge", "queue_name": PAYMENTS,
                          "data": {"order": 7, "amount": 1999},
                          "opts": {"fail_parent_on_failure": True}}],
        })
        print("invoice job is", await node.job.get_state())  # waiting-children
        steps = await onboard.add("onboard", {"email": "ada@example.com"})

        async with Worker(PAYMENTS, charge, connection=REDIS_URL), \
                Worker(EMAIL, send_invoice, connection=REDIS_URL), \
                Worker(ONBOARDING, onboarding, connection=REDIS_URL):
            print(await node.job.wait_until_finished(timeout=30))
            print(await steps.wait_until_finished(timeout=30))
        print("each step ran once:", CALLS)

    for name in (PAYMENTS, EMAIL, ONBOARDING):  # clean up the example's keys
        async with AsyncQueue(name, connection=REDIS_URL) as queue:
            await queue.obliterate(force=True)


if __name__ == "__main__":
    asyncio.run(main())
