"""Command line: ``run`` one document to completion, ``validate`` documents."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from .scxml import DocumentError, load_document
from .scxml.runner import run_to_completion


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        doc = load_document(args.file)
    except DocumentError as e:
        for p in e.problems:
            print(f"error: {p}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {args.file}: {e.strerror}", file=sys.stderr)
        return 2
    for p in doc.problems:
        print(f"warning: {p} (raised as error.execution when reached)", file=sys.stderr)
    outcome = asyncio.run(run_to_completion(doc, timeout=args.timeout))
    print(f"status: {outcome.status}")
    print(f"final state: {outcome.final_state or '-'}")
    print(f"configuration: {' '.join(outcome.configuration) or '-'}")
    if outcome.error:
        print(f"error: {outcome.error}")
    return outcome.exit_code


def _cmd_validate(args: argparse.Namespace) -> int:
    bad = 0
    for path in args.files:
        try:
            load_document(path, strict=True)
        except DocumentError as e:
            bad += 1
            for p in e.problems:
                print(str(p))
        except OSError as e:
            bad += 1
            print(f"{path}:0:0: cannot read: {e.strerror}")
        else:
            print(f"{path}: ok")
    return 1 if bad else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run_engine.py", description="Callback engine")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", help="run one SCXML document to completion")
    run.add_argument("file")
    run.add_argument("--timeout", type=float, default=60.0, help="seconds before giving up")
    run.set_defaults(func=_cmd_run)
    validate = sub.add_parser("validate", help="check SCXML documents and report every problem")
    validate.add_argument("files", nargs="+")
    validate.set_defaults(func=_cmd_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)
