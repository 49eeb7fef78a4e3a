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
        "app-below-cli", "notifications-not-push", "ports-at-the-bottom", "push-not-notifications")

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
