"""Issue 12 item 2: an outside client (schemathesis, pinned in the test extras) reads the engine's
/openapi.json and runs every operation against a live engine process with the client, developer
and administrator keys: the examples, the coverage cases, random fuzzing, and sequences that follow
the document's links (create a callback, then read, change and cancel it). It fails on any server
error, any response whose status, content type, headers or body the document does not describe,
an undeclared method not answered 405, and an operation that answers without a key.

Bounded for CI by a count, not a time: CONTRACT_FUZZ_EXAMPLES fuzzed cases per operation (default
5) besides every example, coverage case and stateful sequence, one worker, a fixed seed: about
2,000 cases per key. (It was a 30 s budget, which a busy machine spent before the phases were done:
417 cases, under the floor of 10 per operation asserted below.) Outbound traffic stays on
loopback: the URL allow list names only a closed loopback port and the FCM endpoints point there too.

Not checked: whether schema-valid data is accepted and schema-invalid data refused
(schemathesis' positive/negative data checks): the document describes the shapes, not every
rule of the handlers (a phone number's form, a name's characters). Nor the Allow header of a 405:
fixed paths such as /admin/flows/reload share their prefix with templates (/admin/flows/{name}),
so aiohttp rightly lists the template's methods too.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
import requests

from tests.support.engine_process import ADMIN_KEY, CLIENT_KEY, DEVELOPER_KEY, shipped_engine

EXAMPLES = os.environ.get("CONTRACT_FUZZ_EXAMPLES", "5")
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance", "unsupported_method", "ignored_auth")


@pytest.fixture(scope="module")
def live_engine(tmp_path_factory):
    engine = shipped_engine(tmp_path_factory.mktemp("contract"))
    asyncio.run(engine.start())
    yield engine
    engine.stop()


def schemathesis_run(location: str, key: str, workdir, *extra: str, seconds: int | None = None,
                     phases: str = "examples,coverage,fuzzing,stateful") -> subprocess.CompletedProcess:
    """``seconds``: the budget schemathesis fuzzes until it is spent; None: no budget (the run
    ends when the phases have made their cases, bounded by ``--max-examples`` in ``extra``)."""
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", location,
        "-H", f"x-api-key: {key}", "-H", f"Authorization: Bearer {key}",
        "--checks", ",".join(CHECKS), "--phases", phases,
        *(("--max-time", str(seconds)) if seconds is not None else ()), "--workers", "1", "--seed", "12",
        "--request-timeout", "20", "--report", "json", "--report-json-path", "report.json", *extra,
    ]
    # The working folder holds what schemathesis and hypothesis write (their example database).
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=(seconds or 60) * 3 + 120,
                          env={**os.environ, "NO_COLOR": "1"})


@pytest.mark.parametrize("role", ["client", "developer", "administrator"])
def test_the_engine_keeps_its_contract(live_engine, role, tmp_path):
    key = {"client": CLIENT_KEY, "developer": DEVELOPER_KEY, "administrator": ADMIN_KEY}[role]
    document = requests.get(f"{live_engine.url}/openapi.json", timeout=10).json()
    # Every operation but the document itself (schemathesis leaves out the URL it read the schema from).
    operations = sum(len(item) for path, item in document["paths"].items() if path != "/openapi.json")
    done = schemathesis_run(f"{live_engine.url}/openapi.json", key, tmp_path, "--max-examples", EXAMPLES)
    tail = "\n".join((done.stdout + done.stderr).splitlines()[-150:])
    assert done.returncode == 0, f"schemathesis found contract violations with the {role} key:\n{tail}"
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["operations"]["tested"] == report["operations"]["total"] == operations, report["operations"]
    assert report["failures"] == [] and report["errors"] == [], tail
    assert report["test_cases"]["generated"] >= 10 * operations, report["test_cases"]
    assert live_engine.proc.poll() is None, live_engine.log()
    assert "unhandled error" not in live_engine.log_path.read_text(), live_engine.log()  # all of it: log() is its tail


def test_the_run_catches_an_answer_the_document_does_not_describe(live_engine, tmp_path):
    """Guards the test above: a document that promises a field the engine does not send fails."""
    document = requests.get(f"{live_engine.url}/openapi.json", timeout=10).json()
    document["components"]["schemas"]["Key"]["required"].append("expires")
    (tmp_path / "doctored.json").write_text(json.dumps(document))
    # One operation (include filters add up: one id), a few fuzzed cases and no time budget: a
    # budget could be spent loading the document on a busy machine, leaving no case run at all.
    done = schemathesis_run("doctored.json", ADMIN_KEY, tmp_path, "--url", live_engine.url,
                            "--include-operation-id", "list_keys", "--max-examples", "5", seconds=None,
                            phases="fuzzing")
    report = json.loads((tmp_path / "report.json").read_text())
    assert done.returncode != 0 and report["failures"], done.stdout[-3000:]
    assert "expires" in done.stdout
