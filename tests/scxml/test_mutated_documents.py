"""Mutated W3C documents (elements dropped or duplicated, attributes and text corrupted) either
compile or are refused with DocumentError; what compiles runs without crashing or hanging.

This found an endless macrostep: an eventless condition raising error.execution that nothing
takes spun without ever taking a microstep.
"""

from __future__ import annotations

import copy
import random

from lxml import etree

from engine.scxml import DocumentError, Limits, SessionHost, compile_document
from tests.scxml.w3c_suite import require_suite, start_files

require_suite()

ATTRS = ["target", "event", "cond", "expr", "location", "id", "initial", "type", "delay", "namelist", "array",
         "item", "index", "sendid", "idlocation", "src", "binding", "datamodel"]
VALUES = ["", " ", "nowhere", "1 +", "*", "x.y", "#_parent", "#_scxml_x", "-1s", "99999s", "a b c", "'s'", "[]",
          "None", "done.state.x", "error.*", "http://127.0.0.1:9/x"]
TEXTS = ["", "{", "[1,2]", "<x>", "&", "1 = 1"]


def mutate(root: etree._Element, rng: random.Random) -> None:
    elements = [e for e in root.iter() if isinstance(e.tag, str)]
    for _ in range(rng.randint(1, 4)):
        el = rng.choice(elements)
        parent = el.getparent()
        op = rng.random()
        if op < 0.25 and parent is not None:
            parent.remove(el)
        elif op < 0.45 and parent is not None:
            parent.insert(rng.randint(0, len(parent)), copy.deepcopy(el))
        elif op < 0.8:
            el.set(rng.choice(ATTRS), rng.choice(VALUES))
        else:
            el.text = rng.choice(TEXTS)


async def test_mutated_documents_never_crash_or_hang() -> None:
    rng = random.Random(20261121)
    files = start_files("mandatory") + start_files("optional")
    compiled = refused = 0
    for _ in range(400):
        path = rng.choice(files)
        root = etree.parse(str(path)).getroot()
        mutate(root, rng)
        try:
            doc = compile_document(etree.tostring(root), source=str(path), base_dir=str(path.parent))
        except DocumentError as e:
            assert e.problems and all(p.line >= 0 for p in e.problems)
            refused += 1
            continue
        compiled += 1
        host = SessionHost(limits=Limits(max_microsteps=2000, max_invoke_depth=4))
        try:
            session = host.create_session(doc).start()
            for name in ("foo", "event1", "timeout"):
                session.send(name)
        finally:
            await host.close()
    assert compiled > 100 and refused > 20  # both paths were exercised
