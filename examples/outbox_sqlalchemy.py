"""The outbox with SQLAlchemy 2: the job commits or rolls back with the ORM's session.

    pip install 'pyqueue-redis[outbox]' sqlalchemy
    pyqueue outbox init --dsn postgresql://app@localhost/app
    pyqueue outbox relay --dsn postgresql://app@localhost/app     (next to your app)

``enqueue_in_session`` hands the session's own psycopg connection to
``pyqueue.outbox.enqueue``: the row is written inside the session's current
transaction, so the job exists (after the relay's next batch) if and only
if ``session.commit()`` succeeds. The engine must use psycopg 3
(``postgresql+psycopg://``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from pyqueue.outbox import enqueue


def enqueue_in_session(session: Session, queue_name: str, name: str, data: Any = None,
                       **job_options: Any) -> int:
    """``pyqueue.outbox.enqueue`` inside the session's transaction; returns the row id."""
    dbapi = session.connection().connection.driver_connection  # the psycopg Connection
    return enqueue(dbapi, queue_name, name, data, **job_options)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "example_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(200), unique=True)


def sign_up(session: Session, email: str) -> int:
    """Create a user and queue their welcome mail, atomically."""
    user = User(email=email)
    session.add(user)
    session.flush()  # the user's id, in the same transaction
    return enqueue_in_session(session, "email", "welcome", {"user_id": user.id, "to": email},
                              attempts=5)


if __name__ == "__main__":
    import sys

    engine = create_engine(sys.argv[1])  # e.g. postgresql+psycopg://app@localhost/app
    Base.metadata.create_all(engine)
    with Session(engine) as session, session.begin():
        print("outbox row", sign_up(session, sys.argv[2]))
