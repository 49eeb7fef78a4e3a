"""Issue 9 item 7: ``src`` of ``<data>``, ``<script>`` and ``<invoke>`` reads only inside the
document's folder (the flows folder in the engine), whatever the path, URI or link says."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.scxml import DocumentError, load_document
from engine.scxml.runner import run_to_completion

HEAD = '<scxml xmlns="http://www.w3.org/2005/07/scxml" version="1.0" datamodel="python" initial="s">'


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    flows = tmp_path / "flows"
    outside = tmp_path / "data"
    flows.mkdir()
    outside.mkdir()
    (outside / "keys.json").write_text('{"administrator": "secret-admin-key"}')
    (flows / "inside.json").write_text('{"ok": true}')
    os.symlink(outside / "keys.json", flows / "link.json")
    return flows, outside


ESCAPES = ["../data/keys.json", "file:../data/keys.json", "link.json", "file://{outside}/keys.json",
           "{outside}/keys.json", "sub/../../data/keys.json"]


ELEMENTS = {"data": '<datamodel><data id="k" src="{src}"/></datamodel>', "script": '<script src="{src}"/>'}


@pytest.mark.parametrize("element", sorted(ELEMENTS))
@pytest.mark.parametrize("src", ESCAPES)
def test_src_outside_the_flows_folder_is_refused(folders, element, src):
    flows, outside = folders
    doc = flows / "leak.scxml"
    doc.write_text(HEAD + ELEMENTS[element].format(src=src.format(outside=outside)) + '<state id="s"/></scxml>')
    with pytest.raises(DocumentError) as e:
        load_document(str(doc), strict=True)  # as the engine's flow registry loads flows
    assert "outside the document's folder" in str(e.value)


async def test_data_src_refused_at_run_time_too_when_not_strict(folders):
    flows, _ = folders
    doc = flows / "leak.scxml"
    doc.write_text(f'''{HEAD}<datamodel><data id="k" src="../data/keys.json"/></datamodel>
        <state id="s"><transition event="error.execution" cond="k is None" target="refused"/></state>
        <final id="refused"/></scxml>''')
    outcome = await run_to_completion(load_document(str(doc)), timeout=5)
    assert outcome.final_state == "refused"


async def test_invoke_srcexpr_outside_the_flows_folder_fails_at_run_time(folders):
    flows, outside = folders
    (outside / "child.scxml").write_text(f'{HEAD}<final id="s"/></scxml>')
    doc = flows / "leak.scxml"
    doc.write_text(f'''{HEAD}<state id="s"><invoke srcexpr="'../data/child.scxml'"/>
        <transition event="done.invoke" target="leaked"/><transition event="error.*" target="refused"/></state>
        <final id="leaked"/><final id="refused"/></scxml>''')
    outcome = await run_to_completion(load_document(str(doc)), timeout=5)
    assert outcome.final_state == "refused"


def test_src_inside_the_flows_folder_still_works(folders):
    flows, _ = folders
    doc = flows / "fine.scxml"
    doc.write_text(f'{HEAD}<datamodel><data id="k" src="inside.json"/></datamodel><state id="s"/></scxml>')
    assert load_document(str(doc)) is not None
