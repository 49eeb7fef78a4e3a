"""Issue 9 item 10: control characters in logged values cannot forge log lines (a newline in a
notification target once did)."""

from __future__ import annotations

import io
import logging

from aiohttp import ClientSession

from engine.logs import TextFormatter, escape_controls
from tests.support.engine_process import CLIENT_KEY, EngineProcess

FORGED = "2026-01-01 00:00:00,000 ERROR engine.api forged line"
LOG_FLOW = """<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" initial="s">
  <datamodel><data id="note" expr="''"/></datamodel>
  <state id="s"><onentry><log label="note" expr="note"/></onentry><transition target="done"/></state>
  <final id="done"/>
</scxml>
"""


def test_escape_controls_keeps_one_line():
    assert escape_controls("plain text") == "plain text"
    assert escape_controls("a\nb\rc") == "a\\nb\\rc"
    assert escape_controls("\x1b[2J\x00\x7f\x85\u2028") == "\\x1b[2J\\x00\\x7f\\x85\\u2028"


def test_text_formatter_escapes_the_message_not_the_traceback():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter("%(levelname)s %(message)s"))
    log = logging.getLogger("test.log_lines")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("target %s refused", "http://x/\n" + FORGED)
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("with a traceback\nsecond")
    finally:
        log.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines[0] == "WARNING target http://x/\\n" + FORGED + " refused"
    assert lines[1] == "ERROR with a traceback\\nsecond"
    assert lines[2].startswith("Traceback")
    assert not any(line.startswith(FORGED) for line in lines)


async def test_a_client_value_logged_by_a_flow_stays_on_its_line(tmp_path):
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "note.scxml").write_text(LOG_FLOW)
    engine = EngineProcess(tmp_path / "data", flows)
    await engine.start()
    try:
        async with ClientSession() as http, http.post(
                engine.url + "/scxml/session/start", headers={"x-api-key": CLIENT_KEY},
                data={"src": "note", "note": "hello\n" + FORGED + "\r\n" + FORGED}) as r:
            assert r.status == 200, await r.text()
    finally:
        engine.stop()
    text = engine.log()
    assert "note: " in text and "hello\\n" + FORGED in text, text
    assert not any(line.startswith(FORGED) for line in text.splitlines())
