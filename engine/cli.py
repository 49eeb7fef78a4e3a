"""Command line: ``serve`` the engine, ``run`` one document to completion, ``validate`` documents."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from pathlib import Path

from .api.appkeys import INITIAL_KEY
from .scxml import DocumentError, load_document
from .scxml.runner import run_to_completion


def _registry():
    """The engine's vocabulary: SCXML plus the platform processor and the ``cb:`` actions."""
    from .runtime import engine_registry

    return engine_registry()


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        doc = load_document(args.file, registry=_registry())
    except DocumentError as e:
        for p in e.problems:
            print(f"error: {p}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {args.file}: {e.strerror}", file=sys.stderr)
        return 2
    for p in doc.problems:
        print(f"warning: {p} (raised as error.execution when reached)", file=sys.stderr)
    outcome = asyncio.run(run_to_completion(doc, timeout=args.timeout, registry=_registry()))
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
            load_document(path, strict=True, registry=_registry())
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


def _settings(args: argparse.Namespace):
    from .settings import Settings

    return Settings.load(
        config_dir=Path(args.config) if getattr(args, "config", None) else None,
        data_dir=getattr(args, "data", None), host=getattr(args, "host", None),
        port=getattr(args, "port", None),
    )


def _say(settings, text: str, error: bool = False) -> None:
    """A line for the operator once logging is set up: printed as it is in text mode, a log line
    in JSON mode (so that log is JSON from its first line)."""
    if settings.log_format == "json":
        logging.getLogger("engine").log(logging.ERROR if error else logging.INFO, text)
    else:
        print(text if not error else f"error: {text}", file=sys.stderr if error else sys.stdout, flush=True)


def _cmd_serve(args: argparse.Namespace) -> int:
    """Start the engine. Before anything touches storage: the data folder is made private and
    locked (one engine per folder) and the port is bound, so a second engine fails fast with
    one line and leaves the first one's database alone."""
    from aiohttp import web

    from .app import create_app
    from .datadir import DataFolderBusy, DataFolderLock, make_private
    from .logs import setup_logging

    os.umask(0o077)  # every file the engine creates (engine.db, its -wal/-shm, keys) is 0600
    try:
        settings = _settings(args)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    setup_logging("DEBUG" if args.verbose else settings.log_level, settings.log_format)
    lock = DataFolderLock(settings.data_dir)
    try:
        lock.acquire()
    except DataFolderBusy as e:
        _say(settings, str(e), error=True)
        return 1
    except OSError as e:
        _say(settings, f"cannot use data folder {settings.data_dir}: {e.strerror or e}", error=True)
        return 2
    make_private(settings.data_dir)
    try:
        sock = _listen(settings.host, settings.port)
    except OSError as e:
        _say(settings, f"cannot listen on {settings.host}:{settings.port}: {e.strerror or e}", error=True)
        return 1
    settings.port = sock.getsockname()[1]  # the real one when asked for port 0
    try:
        app = create_app(settings, freeze_gc=True)
        if app[INITIAL_KEY] is not None:
            _say(settings, f"An administrator key was generated; its secret is in {app[INITIAL_KEY]} (mode 0600): "
                           f"read it, then delete the file. "
                           f"More keys: python run_engine.py keys create --role client --name NAME")
        _say(settings, f"callback engine on {settings.base_url} (data: {settings.data_dir}, "
                       f"flows: {settings.flows_dir})")
        web.run_app(app, sock=sock, print=None, shutdown_timeout=settings.shutdown_timeout, access_log=None)
    finally:
        sock.close()
        lock.release()
    return 0


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket for the engine (IPv4 or IPv6, whichever ``host`` resolves to first)."""
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                  flags=socket.AI_PASSIVE)[0]
    return socket.create_server(address, family=family, backlog=128)


def _cmd_platform(args: argparse.Namespace) -> int:
    """Run the contact-center simulator as its own process, for engine nodes whose
    ``platform_url`` points here (a cluster; issue 14). Its shared secret, ``platform_key``, comes
    from the environment or a file as a node's does (never the command line or simulator.toml);
    without one it listens on a loopback address only."""
    from aiohttp import web

    from .keys import scrub_environment
    from .logs import setup_logging
    from .platform.server import create_platform_app
    from .settings import ENV_PREFIX, REPO, loopback, platform_key_from

    setup_logging("DEBUG" if args.verbose else args.log_level, "text")
    config_dir = Path(args.config) if args.config else REPO / "config"
    try:
        key = platform_key_from()
    except (ValueError, OSError) as e:
        print(f"error: platform_key: {e}", file=sys.stderr)
        return 2
    scrub_environment()  # read: nothing this process starts sees it
    if key is None:
        if not loopback(args.host):
            print(f"error: the platform on {args.host} (not a loopback address) needs platform_key: set "
                  f"{ENV_PREFIX}PLATFORM_KEY or {ENV_PREFIX}PLATFORM_KEY_FILE here and on every node", file=sys.stderr)
            return 2
        logging.getLogger("engine.platform.server").warning(
            "no platform_key (%sPLATFORM_KEY or ..._FILE): any process on this machine can connect as a node",
            ENV_PREFIX)
    try:
        app = create_platform_app(config_dir, key)
        sock = _listen(args.host, args.port)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"platform on http://{args.host}:{sock.getsockname()[1]} (settings: {config_dir / 'simulator.toml'})",
          flush=True)
    try:
        web.run_app(app, sock=sock, print=None, access_log=None, shutdown_timeout=5)
    finally:
        sock.close()
    return 0


def _cmd_keys(args: argparse.Namespace) -> int:
    """List, create, rotate or revoke keys in the data folder; works while the engine runs (it
    reloads the file). In a cluster (a PostgreSQL database) the keys are the database's, and every
    node serves a change at once. A new secret is printed alone on stdout, once; it is not kept."""
    from .keys import open_keys

    try:
        settings = _settings(args)
        if settings.in_cluster:
            return asyncio.run(_keys_in_cluster(args, settings))
        return _keys_action(args, open_keys(settings))
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


async def _keys_in_cluster(args: argparse.Namespace, settings) -> int:
    from . import persistence
    from .keys import KeyStore, bootstrap_keys, key_file
    from .storage.api_keys import KeyTable
    from .storage.shared_config import SharedConfig

    store = await persistence.open_store(settings.db_url)
    try:
        keys = KeyStore(key_file(settings), bootstrap_keys(settings))
        await keys.share(KeyTable(SharedConfig(store, f"{settings.node} (keys command)")))
        return await asyncio.to_thread(_keys_action, args, keys)
    finally:
        await store.close()


def _keys_action(args: argparse.Namespace, store) -> int:
    from .keys import KeyRequestError, check_request

    try:
        action = args.action or "list"
        if action == "list":
            for k in store.listing():
                scope = ",".join(k["services"]) if k["services"] else "-"
                print(f"{k['name']}\t{k['role']}\t{k['prefix'] or '-'}...\tservices: {scope}\tsource: {k['source']}")
            return 0
        if action == "create":
            name, role, services = check_request(args.name, args.role, args.services)
            _, secret = store.create(name, role, services)
        elif action == "rotate":
            _, secret = store.rotate(args.name)
        else:
            store.revoke(args.name)
            print(f"revoked {args.name}", file=sys.stderr)
            return 0
    except (KeyRequestError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(secret)
    return 0


def _keys_parser(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action")
    actions.add_parser("list", help="names, roles and prefixes (the default)")
    create = actions.add_parser("create", help="make a key and print its secret (shown only now)")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, help="administrator, supervisor, monitor, developer or client")
    create.add_argument("--services", help="client keys: comma-separated services the key is limited to")
    for name, text in (("rotate", "give a key a new secret and print it"), ("revoke", "delete a key")):
        actions.add_parser(name, help=text).add_argument("name")


#: Where each kind of shared document goes in a configuration folder (as ``config/`` has them).
CONFIG_LAYOUT = {"service": ("services", ".json"), "business_hours": ("business-hours", ".json"),
                 "transaction_list": ("transaction-lists", ".cfg"), "callback_settings": ("callback-settings", ".json")}


def _cmd_config(args: argparse.Namespace) -> int:
    """A cluster's shared configuration: ``export DIR`` writes every document (DIR/services, ...,
    DIR/scxml) as the files of ``config/`` and ``scxml/``; ``import DIR`` takes the files of DIR
    that changed since their last import, checked as the API checks them (every node serves them
    at once)."""
    try:
        settings = _settings(args)
        if not settings.in_cluster:
            print("error: the configuration is in the database only in a cluster (a PostgreSQL database_url); "
                  "otherwise it is the files of config/ and scxml/", file=sys.stderr)
            return 2
        run = _config_export if args.action == "export" else _config_import
        return asyncio.run(run(Path(args.folder), settings, args))
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


async def _config_export(folder: Path, settings, args: argparse.Namespace) -> int:
    from . import persistence
    from .atomic_file import write_atomic
    from .notifications.outbound_config import FILE as NOTIFICATIONS_FILE
    from .notifications.outbound_config import KIND as OUTBOUND_KIND
    from .notifications.outbound_config import exported_file
    from .secretbox import SecretBox
    from .storage import config_docs

    store = await persistence.open_store(settings.db_url)
    try:
        written = 0
        for kind, (sub, ext) in CONFIG_LAYOUT.items():
            for doc in await config_docs.read_kind(store, kind):
                write_atomic(folder / sub / f"{doc.name}{ext}", doc.body.encode("utf-8"), 0o644)
                written += 1
        if (outbound := await config_docs.read(store, OUTBOUND_KIND, OUTBOUND_KIND)) is not None:
            # its secrets opened, as config/notifications.json holds them: readable by its owner only
            write_atomic(folder / NOTIFICATIONS_FILE,
                         exported_file(outbound.body, SecretBox.for_data_dir(settings.data_dir)).encode(), 0o600)
            written += 1
        for name, version, text, current in await config_docs.current_flows(store, args.all_versions):
            targets = [folder / "scxml" / f"{name}.scxml"] if current else []
            if args.all_versions:  # beside the flows, where no engine takes them for flows of their own
                targets.append(folder / "scxml" / "versions" / f"{name}.v{version}.scxml")
            for target in targets:
                write_atomic(target, text.encode("utf-8"), 0o644)
                written += 1
    finally:
        await store.close()
    print(f"exported {written} files to {folder}")
    return 0


async def _config_import(folder: Path, settings, args: argparse.Namespace) -> int:
    from . import persistence
    from .callbacks.callback_settings import CallbackSettings
    from .callbacks.services import ServiceRegistry
    from .notifications.notifier import TransactionLists
    from .notifications.outbound_config import FILE as NOTIFICATIONS_FILE
    from .notifications.outbound_config import SharedOutboundConfig
    from .runtime import engine_registry
    from .secretbox import SecretBox
    from .sessions.flows import FlowRegistry
    from .storage import KeyMismatch, check_secret_key, config_docs
    from .storage.shared_config import SharedConfig

    if not folder.is_dir():
        raise ValueError(f"{folder} is not a folder")
    store = await persistence.open_store(settings.db_url)
    try:
        before = await config_docs.revisions(store)
        shared = SharedConfig(store, f"{settings.node} (config import)")
        lists = TransactionLists(folder, shared=shared)
        await lists.open()
        for problem in await CallbackSettings(folder, shared=shared).open():
            logging.getLogger("engine.callbacks").error("CALLBACK_SETTINGS refused: %s", problem)
        await ServiceRegistry(folder, references={"_callback_events_list": ("transaction list", lists.names)},
                              shared=shared).open()
        flows = FlowRegistry(folder / "scxml", engine_registry(), store, watch_interval=0, shared=shared)
        await flows.start()
        await flows.close()
        if (folder / NOTIFICATIONS_FILE).is_file():  # its secrets sealed with the cluster's key, checked first
            box = SecretBox.for_data_dir(settings.data_dir)
            try:
                await check_secret_key(store, box.derive("cluster-key-check").hex())
            except KeyMismatch as e:
                raise ValueError(f"{NOTIFICATIONS_FILE} not imported: {e}") from None
            await SharedOutboundConfig(folder / NOTIFICATIONS_FILE, box, shared).reload()
        after = await config_docs.revisions(store)
    finally:
        await store.close()
    changed = sorted(f"{kind} {name}" for key in after if after[key] != before.get(key) for kind, name in [key])
    print(f"imported {len(changed)} changed documents from {folder}" + "".join(f"\n  {c}" for c in changed))
    return 0


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
    platform = sub.add_parser("platform", help="run the contact-center simulator as its own process")
    platform.add_argument("--config", help="settings folder holding simulator.toml (default: config/)")
    platform.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    platform.add_argument("--port", type=int, default=8090, help="port (default 8090)")
    platform.add_argument("--log-level", default="INFO")
    platform.set_defaults(func=_cmd_platform)
    for name, func, text in (("serve", _cmd_serve, "start the engine (the default command)"),
                             ("keys", _cmd_keys, "list, create, rotate or revoke API keys"),
                             ("config", _cmd_config, "a cluster: export or import the shared configuration")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--config", help="settings folder (default: config/)")
        p.add_argument("--data", help="data folder (default: data/)")
        if name == "serve":
            p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
            p.add_argument("--port", type=int, help="port (default 8080)")
        elif name == "config":
            p.add_argument("action", choices=("export", "import"))
            p.add_argument("folder", help="export: where to write; import: a folder laid out as config/ with scxml/")
            p.add_argument("--all-versions", action="store_true",
                           help="export: every version of each flow too, as scxml/versions/NAME.vN.scxml")
        else:
            _keys_parser(p)
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(argv if argv is not None else sys.argv[1:])
    args = parser.parse_args(argv)
    if args.command is None:  # no command, or only options such as -v: serve
        args = parser.parse_args([*argv, "serve"])
    if args.command not in ("serve", "platform"):
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
    return args.func(args)
