"""Issue 11 item 4: ``_genesys`` in ecmascript flows, precomputed from the engine's data (the
sandbox cannot call back into Python): dates, times and days in a zone, special days of a
business-hours service, transaction list items, tenant, server name, the virtual interaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from engine.scxml import SessionHost, compile_document, standard_registry
from engine.scxml.ecmascript import EcmaScriptDataModel
from engine.scxml.ecmascript.ors import OrsFacilities, OrsSources, list_items

LIST = """[properties]
notify_params = a,
   b
[_cbe_on_dial_init]
label = Dialling
"""


@dataclass
class Hours:
    time_zone: str
    exceptions: dict = field(default_factory=dict)


def run(expr_lines: dict[str, str], now: datetime, interaction=None):
    today_paris = now.astimezone(ZoneInfo("Europe/Paris")).date()
    sources = OrsSources(tenant="Acme", server_name="orsA", now=lambda: now.timestamp(),
                         business_hours=lambda: {"office": Hours("America/New_York", {today_paris: ()}),
                                                 "paris": Hours("Europe/Paris", {today_paris: ()})},
                         lists=lambda: {"GMS_Events": LIST}, interaction=lambda sid: interaction)
    registry = standard_registry()
    registry.register_datamodel("ecmascript", lambda: EcmaScriptDataModel(facilities=OrsFacilities(sources)))
    data = "".join(f'<data id="{k}" expr="{v}"/>' for k, v in expr_lines.items())
    doc = compile_document('<scxml xmlns="http://www.w3.org/2005/07/scxml" datamodel="ecmascript" initial="s">'
                           f'<datamodel>{data}</datamodel><state id="s"/></scxml>', registry=registry)
    return SessionHost(registry=registry).start_session(doc).variables


def test_time_in_zones_follows_the_engine_clock_and_daylight_saving() -> None:
    now = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # 01:30 in Paris, the night clocks go forward
    got = run({"d": "_genesys.session.dateInZone('Asia/Tokyo')", "t": "_genesys.session.timeInZone('Europe/Paris')",
               "day": "_genesys.session.dayInZone('America/Los_Angeles')",
               "tz": "_genesys.session.timeInZone('UTC')"}, now)
    assert got == {"d": "2026-03-29", "t": "01:30", "day": "sat", "tz": "00:30"}
    after = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # 03:30 in Paris (summer time)
    assert run({"t": "_genesys.session.timeInZone('Europe/Paris')"}, after) == {"t": "03:30"}


def test_an_unknown_zone_is_an_error_of_the_flow() -> None:
    got = run({"bad": "_genesys.session.timeInZone('Mars/Olympus')"}, datetime.now(UTC))
    assert str(got["bad"]) == "undefined"  # error.execution; the data stays undefined


def test_special_days_lists_tenant_server_and_interaction() -> None:
    now = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    got = run({"special": "_genesys.session.isSpecialDay('paris')",
               "other": "_genesys.session.isSpecialDay('paris', 'Pacific/Kiritimati')",
               "item": "_genesys.session.getListItemValue('GMS_Events', '_cbe_on_dial_init', 'label')",
               "joined": "_genesys.session.getListItemValue('GMS_Events', 'properties', 'notify_params')",
               "missing": "typeof _genesys.session.getListItemValue('GMS_Events', 'nope', 'x')",
               "who": "_genesys.session.tenant + '/' + _genesys.session.server.name",
               "ixn": "_genesys.ixn.interactions[0].udata.order",
               "frozen": "Object.isFrozen(_genesys.session)"},
              now, interaction={"id": "cb1", "type": "callback", "udata": {"order": "A-17"}})
    assert got == {"special": True, "other": False, "item": "Dialling", "joined": "a,b", "missing": "undefined",
                   "who": "Acme/orsA", "ixn": "A-17", "frozen": True}


def test_list_items_read_sections_as_items() -> None:
    assert list_items(LIST) == {"properties": {"notify_params": "a,b"}, "_cbe_on_dial_init": {"label": "Dialling"}}
    assert date(2026, 1, 1).isoformat() == "2026-01-01"
