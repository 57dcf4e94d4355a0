"""Turns at the one resident model: one holder at a time, in order of arrival, each waiter's place
visible (engine.chat.models.ModelManager serves every request through one TurnQueue)."""

from __future__ import annotations

import threading
from collections import deque
from contextlib import contextmanager
from typing import Iterator

from engine.chat import generation

WAIT_UPDATE_S = 0.5  # how often a queued request looks at its place in the line


class TurnQueue:
    """One holder of the model at a time, in order of arrival, each waiter's place visible. A plain lock
    wakes any waiter, so a steady flow of requests could pass one by indefinitely. Tickets, not threads,
    hold a turn: a streamed reply is read by whichever worker thread the web server picks, and its turn
    ends on the generating thread."""

    def __init__(self):
        self._changed = threading.Condition()
        self._line: deque[object] = deque()  # the first holds the model

    def __len__(self) -> int:
        with self._changed:
            return len(self._line)

    def join(self) -> object:
        ticket = object()
        with self._changed:
            self._line.append(ticket)
        return ticket

    def ahead(self, ticket: object, timeout: float | None = None) -> int:
        """Wait up to `timeout` seconds for `ticket`'s turn; how many are still ahead of it (0: its turn)."""
        with self._changed:
            self._changed.wait_for(lambda: self._line[0] is ticket, timeout)
            return self._line.index(ticket)

    def waits(self, ticket: object) -> Iterator[generation.Reply]:
        """Until `ticket`'s turn, a reply without text each time the number ahead of it changes."""
        shown, ahead = 0, self.ahead(ticket, 0)
        while ahead:
            if ahead != shown:
                shown = ahead
                yield generation.Reply("", waiting=ahead, notice=f"Waiting for {ahead} earlier "
                                       f"request{'s' if ahead > 1 else ''} to finish…")
            ahead = self.ahead(ticket, WAIT_UPDATE_S)

    def leave(self, ticket: object) -> None:
        """End the ticket's turn or its wait; leaving twice is harmless."""
        with self._changed:
            if ticket in self._line:
                self._line.remove(ticket)
                self._changed.notify_all()

    @contextmanager
    def turn(self):
        ticket = self.join()
        try:
            self.ahead(ticket)
            yield
        finally:
            self.leave(ticket)
