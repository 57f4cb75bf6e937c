"""Django recipes: the outbox inside ``transaction.atomic()``, and ``on_commit``.

Django 4.2+ with psycopg 3 (``pip install django 'pyqueue-redis[outbox]'``).
In a project, put the two functions in your code and run the relay and the
worker as processes next to the app (``pyqueue outbox relay --dsn ...``,
``pyqueue worker myapp.jobs:worker``); a management command that calls
``pyqueue.outbox.Relay(dsn).run()`` works as well.

* ``sign_up`` (the outbox): the job row is written with Django's own
  connection, in the atomic block's transaction: no commit, no job; commit,
  exactly one job, even if the process dies right after.
* ``sign_up_on_commit`` (no outbox): ``transaction.on_commit`` adds the job
  after the commit. Simpler, but a crash between the COMMIT and the add loses
  the job: use it where that is acceptable.

Run this file as a demo: ``python examples/django_outbox.py`` with
``$PYQUEUE_OUTBOX_DSN`` (PostgreSQL, libpq format or URL) and ``$REDIS_URL``.
"""

from __future__ import annotations

import os
from typing import Any

import django
from django.conf import settings


def configure(dsn: str) -> None:
    """Minimal Django settings for the demo (a project has its own)."""
    from psycopg.conninfo import conninfo_to_dict

    params: dict[str, Any] = conninfo_to_dict(dsn)
    settings.configure(DATABASES={"default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": params.get("dbname", ""), "USER": params.get("user", ""),
        "PASSWORD": params.get("password", ""), "HOST": params.get("host", ""),
        "PORT": params.get("port", ""),
        "OPTIONS": {"options": params["options"]} if params.get("options") else {},
    }}, USE_TZ=True)
    django.setup()


def sign_up(email: str) -> int:
    """Insert a user and its welcome job in one transaction; returns the outbox row id."""
    from django.db import connection, transaction

    from pyqueue.outbox import enqueue

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO example_users (email) VALUES (%s)", [email])
        return enqueue(connection.connection, "email", "welcome", {"to": email}, attempts=5)


def sign_up_on_commit(email: str, queue: Any) -> None:
    """Without the outbox: the job is added after the COMMIT (lost if the process dies then)."""
    from django.db import connection, transaction

    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO example_users (email) VALUES (%s)", [email])
        transaction.on_commit(lambda: queue.add("welcome", {"to": email}))


def main() -> None:
    from django.db import connection

    from pyqueue import Queue
    from pyqueue.outbox import Relay, init

    dsn = os.environ["PYQUEUE_OUTBOX_DSN"]
    configure(dsn)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS example_users (email text UNIQUE)")
    init(connection.connection)
    row = sign_up("ada@example.com")
    try:
        sign_up("ada@example.com")  # the unique email fails: the whole transaction rolls back
    except django.db.IntegrityError:
        print("second sign-up rolled back, and its job with it")
    with Queue("email") as queue:
        sign_up_on_commit("alan@example.com", queue)
        with Relay(dsn) as relay:
            print("relayed", relay.run_until_empty(), "row(s); first row id", row)
        print("email jobs:", sorted(job.id for job in queue.get_jobs("waiting")))


if __name__ == "__main__":
    main()
