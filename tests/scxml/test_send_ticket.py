"""``Session.send`` tells what became of its event: a session that reaches a final state with
events still queued drops them, and an API answering a client must then not say "delivered"
(the kill -9 crash test once counted such a note as acknowledged yet lost)."""

from __future__ import annotations

from engine.scxml import Event, SessionHost
from tests.scxml.documents import scxml

ENDS_ON_PING = scxml(
    '<datamodel><data id="notes" expr="[]"/></datamodel>'
    '<state id="s"><transition event="note"><script>notes.append(1)</script></transition>'
    '<transition event="ping" target="done"/></state><final id="done"/>'
)


async def test_an_event_taken_or_still_queued_counts_as_taken() -> None:
    session = SessionHost().start_session(ENDS_ON_PING)
    ticket = session.send("note")
    assert session.took(ticket) and session.datamodel.variable("notes") == [1]


async def test_an_event_queued_behind_the_end_is_reported_lost() -> None:
    session = SessionHost().start_session(ENDS_ON_PING)
    session.deliver(Event("ping", None))  # queued for the next loop turn, ahead of the note
    ticket = session.send("note")  # processes the queue: ping ends the session first
    assert session.status == "finished"
    assert not session.took(ticket)
    assert not session.took(session.send("note"))  # an ended session takes nothing
