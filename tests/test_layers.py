"""The import contracts in .importlinter (the layers of the engine and of the interpreter) are kept.

import-linter runs in a child process, rooted at a chosen folder, so the same check can be pointed
at a scratch copy of the engine with a deliberately bad import (the test that this test can fail).
"""

from __future__ import annotations

import configparser
import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

CONFIG = ".importlinter"

# Contracts that hold today: each must stay kept.
KEPT = ("engine-layers", "scxml-layers", "scxml-model-at-the-bottom", "below-the-api",
        "app-below-cli", "notifications-not-push", "utilities-below-everything", "push-not-notifications",
        "ecmascript-is-a-datamodel")

# Runs in the child: check the named contracts, print {id: {"kept": bool, "imports": [...]}}.
_CHECK = """
import json, sys
import importlinter.api  # noqa: F401 - configures import-linter
from importlinter.application import use_cases

def links(data):
    if isinstance(data, dict):
        if {"importer", "imported", "line_numbers"} <= data.keys():
            yield f"{data['importer']} -> {data['imported']}"
        for value in data.values():
            yield from links(value)
    elif isinstance(data, (list, tuple, set)):
        for value in data:
            yield from links(value)

config, ids = sys.argv[1], tuple(sys.argv[2:])
options = use_cases.read_user_options(config)
use_cases._register_contract_types(options)
report = use_cases.create_report(options, ids, cache_dir=None)
if report.contains_failures and not any(True for _ in report.get_contracts_and_checks()):
    raise SystemExit(f"import-linter could not check {ids}: {report.invalid_contract_options}")
by_name = {o["name"]: o["id"] for o in options.contracts_options}
print(json.dumps({by_name[c.name]: {"kept": check.kept, "imports": sorted(set(links(check.metadata)))}
                  for c, check in report.get_contracts_and_checks()}))
"""


def check(root: Path, ids: tuple[str, ...]) -> dict[str, dict]:
    """Check contracts ``ids`` of ``root/.importlinter`` against the ``engine`` package under ``root``."""
    done = subprocess.run([sys.executable, "-c", _CHECK, CONFIG, *ids], cwd=root, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def contract_ids(root: Path) -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(root / CONFIG)
    prefix = "importlinter:contract:"
    return {section.removeprefix(prefix) for section in parser.sections() if section.startswith(prefix)}


def test_every_contract_is_either_kept_or_known_broken() -> None:
    assert contract_ids(REPO) == set(KEPT)


def test_contracts_that_hold_today_are_kept() -> None:
    result = check(REPO, KEPT)
    broken = {cid: got["imports"] for cid, got in result.items() if not got["kept"]}
    assert set(result) == set(KEPT)
    assert not broken, f"imports against the layers: {broken}"


def test_a_bad_import_in_a_copy_of_the_engine_breaks_the_kept_layers(tmp_path: Path) -> None:
    shutil.copytree(REPO / "engine", tmp_path / "engine", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / CONFIG, tmp_path / CONFIG)
    assert check(tmp_path, ("engine-layers",))["engine-layers"]["kept"]
    store = tmp_path / "engine" / "storage" / "store.py"
    store.write_text(store.read_text() + "\nfrom ..callbacks import records  # noqa: E402,F401\n")
    result = check(tmp_path, ("engine-layers",))["engine-layers"]
    assert not result["kept"] and "engine.storage.store -> engine.callbacks.records" in result["imports"]


def test_every_part_of_the_engine_is_in_a_layer_or_a_utility() -> None:
    """A module in no contract is checked by none: the cycle flows <-> sessions hid that way."""
    parser = configparser.ConfigParser()
    parser.read(REPO / CONFIG)
    layered = {name.strip() for line in parser["importlinter:contract:engine-layers"]["layers"].splitlines()
               for name in line.replace("|", " ").replace(":", " ").replace("(", " ").replace(")", " ").split()}
    utilities = {m.strip().removeprefix("engine.") for m in
                 parser["importlinter:contract:utilities-below-everything"]["source_modules"].split()}
    parts = {p.stem if p.is_file() else p.name for p in (REPO / "engine").iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    assert parts - layered - utilities == set(), "each new module of engine/ goes into a layer or the utilities"


def test_no_import_cycle_between_the_parts_of_the_engine() -> None:
    done = subprocess.run([sys.executable, "-c", _CYCLES], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"cycles between parts of engine/: {done.stdout}"


# Runs in the child: every pair of top-level parts of engine/ that import each other (directly or not).
_CYCLES = """
import json, grimp
graph = grimp.build_graph("engine", cache_dir=None)
parts = sorted(graph.find_children("engine"))
found = []
for i, a in enumerate(parts):
    for b in parts[i + 1:]:
        if graph.chain_exists(importer=a, imported=b, as_packages=True) and \
                graph.chain_exists(importer=b, imported=a, as_packages=True):
            found.append([a, b])
print(json.dumps(found))
"""
