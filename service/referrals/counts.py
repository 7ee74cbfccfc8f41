"""Referrals by state, deliveries by channel and state, attempts by channel and
outcome: sums of ``state_counts``, the rows the database's triggers add as
work happens (migration 0010), so a count costs the same at any volume.

Each change adds a row; ``fold`` replaces the rows by one per key, in one
transaction (rows added meanwhile by other transactions are not seen by its
DELETE, and stay), so the rows a read sums stay few.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from refflow.db.models import StateCount

FOLD_ABOVE = 500  # rows: fold when a read summed more


@dataclass
class Counts:
    referrals: dict[str, int] = field(default_factory=dict)  # state -> n
    deliveries: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, state)
    attempts: dict[tuple[str, str], int] = field(default_factory=dict)  # (channel, outcome)
    rows: int = 0

    def deliveries_by_state(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for (_, state), n in self.deliveries.items():
            found[state] = found.get(state, 0) + n
        return found


def read(session: Session) -> Counts:
    counts = Counts()
    for subject, channel, state, n, rows in session.execute(
            select(StateCount.subject, StateCount.channel, StateCount.state,
                   func.sum(StateCount.n), func.count())
            .group_by(StateCount.subject, StateCount.channel, StateCount.state)):
        counts.rows += rows
        n = int(n)
        if not n:
            continue
        if subject == "referral":
            counts.referrals[state] = n
        elif subject == "delivery":
            counts.deliveries[(channel, state)] = n
        elif subject == "attempt":
            counts.attempts[(channel, state)] = n
    return counts


def read_and_fold(db) -> Counts:
    """The counts; the rows are folded first when there are many."""
    with db.session() as session:
        counts = read(session)
    if counts.rows > FOLD_ABOVE:
        fold(db)
    return counts


def fold(db) -> None:
    with db.session() as session:
        moved = session.execute(delete(StateCount).returning(
            StateCount.subject, StateCount.channel, StateCount.state, StateCount.n)).all()
        totals: dict[tuple[str, str, str], int] = {}
        for subject, channel, state, n in moved:
            key = (subject, channel, state)
            totals[key] = totals.get(key, 0) + n
        session.add_all(StateCount(subject=s, channel=c, state=st, n=n)
                        for (s, c, st), n in totals.items() if n)
