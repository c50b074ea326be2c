"""`contributor-registry`: serve, settle, add-operator, datanet, seed-demo, openapi.

Exit codes follow the app: 0 ok, 2 usage, 1 internal bug.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from registry.settings import RegistrySettings

DEFAULT_DB = "sqlite:///registry.sqlite3"
DEFAULT_BLOBS = "registry-blobs"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="contributor-registry", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the registry (HTTP)")
    serve.add_argument("--db", default=DEFAULT_DB, help="SQLAlchemy URL (sqlite or postgresql)")
    serve.add_argument("--blobs", default=DEFAULT_BLOBS, help="blob store directory")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8750, help="0 = pick a free port")
    serve.add_argument(
        "--public-url",
        default=None,
        help="URL contributors sign and reach this registry at; required unless --host is a "
        "loopback address (then the loopback URL the client called is used)",
    )
    serve.add_argument("--operator-key", action="append", default=[], help="operator pubkey hex")
    serve.add_argument("--max-body-bytes", type=int, default=8 * 1024 * 1024)
    serve.add_argument("--token-ttl", type=int, default=15 * 60, help="seconds")
    serve.add_argument("--rate-limit", type=int, default=600, help="requests/minute per key")
    serve.add_argument("--enable-bench-put", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument(
        "--no-settler",
        action="store_true",
        help="do not settle usage in this process (run `contributor-registry settle` instead)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="API worker processes (PostgreSQL only); this process then runs the one settler "
        "(none with --no-settler) and the workers share rate limits and caches through the "
        "database",
    )

    settle = sub.add_parser("settle", help="settle received usage into the ledger (alone)")
    settle.add_argument("--db", default=DEFAULT_DB)
    settle.add_argument("--once", action="store_true", help="settle what is there, then exit")
    settle.add_argument("--chunk", type=int, default=5000, help="events per transaction")
    settle.add_argument("--poll", type=float, default=0.5, help="seconds between looks")

    op = sub.add_parser("add-operator", help="make a public key a model operator")
    op.add_argument("public_key", help="Ed25519 public key, 64 hex chars")
    op.add_argument("--db", default=DEFAULT_DB)

    from registry import datanet_cli

    datanet_cli.add_parser(sub)

    seed = sub.add_parser("seed-demo", help="demo models + simulated usage (labelled demo)")
    seed.add_argument("--db", default=DEFAULT_DB)
    seed.add_argument(
        "--owner-key", default=None, help="public key (hex) that owns the demo datanet with review"
    )
    seed.add_argument(
        "--blobs",
        default=None,
        help="the registry's blob store directory: evidence spans are read from the "
        "contributions' files there (without it, exact-match usage carries no evidence)",
    )

    lk = sub.add_parser(
        "log-key", help="print the transparency log's verifier key (made if there is none)"
    )
    lk.add_argument("--db", default=DEFAULT_DB)
    lk.add_argument(
        "--rotate",
        action="store_true",
        help="retire the log key and make a new one (clients must pin the new key)",
    )

    api = sub.add_parser("openapi", help="write the OpenAPI document")
    api.add_argument("--out", default="-", help="file path or - for stdout")
    return p


def configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("registry.access", "registry.errors"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        logger.propagate = False


def _usage_error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _serve_settings_problem(args: argparse.Namespace) -> str | None:
    from app.signing.identity import public_key_problem
    from registry.middleware import is_loopback

    for key in args.operator_key:
        try:
            raw = bytes.fromhex(key)
        except ValueError:
            return f"--operator-key {key[:20]!r} is not hexadecimal"
        reason = public_key_problem(raw)
        if reason is not None:
            return f"--operator-key {key[:20]!r} is refused: {reason}"
    if args.public_url is None and not is_loopback(args.host):
        return (
            f"--public-url is required when serving on {args.host} (not a loopback address): "
            "contributors sign the registry's URL, and it must not come from the Host header"
        )
    if args.public_url is not None:
        parsed = urlsplit(args.public_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            return f"--public-url {args.public_url!r} is not an http(s) URL"
    return None


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from registry import workers
    from registry.app import create_app

    problem = _serve_settings_problem(args)
    if problem is not None:
        return _usage_error(problem)
    if args.workers < 1:
        return _usage_error("--workers must be at least 1")
    if args.workers > 1 and not args.db.startswith("postgresql"):
        return _usage_error(
            f"--workers {args.workers} needs PostgreSQL: a SQLite registry has one writer and "
            "keeps its rate limits in memory, so it runs as one process (use --workers 1)"
        )
    configure_logging()
    settings = RegistrySettings(
        db_url=args.db,
        blobs_dir=Path(args.blobs),
        max_body_bytes=args.max_body_bytes,
        token_ttl_s=args.token_ttl,
        rate_limit_per_minute=args.rate_limit,
        public_url=args.public_url,
        # Without a public URL the server is on loopback: only loopback Host headers may name it.
        loopback_hosts_only=args.public_url is None,
        operator_keys=tuple(k.lower() for k in args.operator_key),
        enable_bench_put=args.enable_bench_put,
        settle_in_process=not args.no_settler,
    )
    if args.workers > 1:
        return workers.serve(settings, args.host, args.port, args.workers)
    app = create_app(settings)
    sock = workers.listen(args.host, args.port)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, **workers.uvicorn_options())
    server = uvicorn.Server(config)
    # Everything made so far (modules, app, schema) lives as long as the server: out of the
    # collector's way, so a full collection scans only what requests allocate.
    gc.freeze()
    print(f"listening on http://{args.host}:{port}", flush=True)
    server.run(sockets=[sock])  # uvloop + httptools when installed (uvicorn[standard])
    return 0


def _add_operator(args: argparse.Namespace) -> int:
    from app.signing.identity import public_key_problem
    from registry.auth import fingerprint_of
    from registry.db.models import ROLE_OPERATOR, Key
    from registry.db.session import make_engine, make_sessionmaker, migrate

    pub = args.public_key.strip().lower()
    try:
        if len(pub) != 64:
            raise ValueError
        fpr = fingerprint_of(pub)
    except ValueError:
        return _usage_error("the public key must be 64 hex characters (raw Ed25519)")
    reason = public_key_problem(bytes.fromhex(pub))
    if reason is not None:
        return _usage_error(f"the public key is refused: {reason}")
    engine = make_engine(args.db)
    migrate(engine)
    with make_sessionmaker(engine)() as session:
        key = session.get(Key, fpr)
        if key is None:
            session.add(Key(fingerprint=fpr, public_key=pub, role=ROLE_OPERATOR))
        else:
            key.role = ROLE_OPERATOR
        session.commit()
    engine.dispose()
    print(f"operator {fpr}")
    return 0


def _seed_demo(args: argparse.Namespace) -> int:
    from registry.db.session import make_engine, make_sessionmaker, migrate
    from registry.seed import seed_demo

    engine = make_engine(args.db)
    migrate(engine)
    try:
        report = seed_demo(
            make_sessionmaker(engine),
            owner_key=args.owner_key,
            blobs_dir=Path(args.blobs) if args.blobs else None,
        )
    except ValueError as exc:
        engine.dispose()
        return _usage_error(str(exc))
    print(report.describe())
    engine.dispose()
    return 0


def _log_key(args: argparse.Namespace) -> int:
    from registry import translog
    from registry.db.session import make_engine, make_sessionmaker, migrate

    engine = make_engine(args.db)
    migrate(engine)
    with make_sessionmaker(engine)() as session:
        origin, vkey = translog.identity(session)
        if args.rotate:
            old, vkey = translog.rotate_key(session)
            session.commit()
            print(f"retired {old}", file=sys.stderr)
    engine.dispose()
    print(vkey)
    return 0


def openapi_document() -> dict[str, object]:
    """The OpenAPI document of the code as it is (bench route excluded)."""
    import tempfile

    from registry.app import create_app

    with tempfile.TemporaryDirectory() as tmp:
        settings = RegistrySettings(
            db_url=f"sqlite:///{tmp}/openapi.sqlite3", blobs_dir=Path(tmp) / "blobs"
        )
        app = create_app(settings)
        doc = app.openapi()
        app.state.engine.dispose()
    return doc


def render_openapi() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _openapi(args: argparse.Namespace) -> int:
    text = render_openapi()
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


def _datanet(args: argparse.Namespace) -> int:
    from registry import datanet_cli

    return datanet_cli.run(args)


def _settle(args: argparse.Namespace) -> int:
    import time

    from registry.db.session import make_engine, make_sessionmaker, migrate
    from registry.settlement import Pipeline, settle_once

    if args.chunk < 1 or args.poll <= 0:
        return _usage_error("--chunk must be at least 1 and --poll above 0")
    configure_logging()
    engine = make_engine(args.db)
    migrate(engine)
    sessions = make_sessionmaker(engine)
    share = RegistrySettings.contributor_share_ppm
    # PostgreSQL: the next chunk is computed while one is written
    pipeline = Pipeline(sessions, share, args.chunk) if Pipeline.wanted(sessions) else None
    try:
        while True:
            result = settle_once(sessions, share_ppm=share, limit=args.chunk, pipeline=pipeline)
            if result.events:
                print(f"settled {result.events} through {result.settled_seq}", flush=True)
                continue
            if args.once:
                return 0
            time.sleep(args.poll)
    finally:
        if pipeline is not None:
            pipeline.close()
        engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handlers = {
        "datanet": _datanet,
        "serve": _serve,
        "add-operator": _add_operator,
        "seed-demo": _seed_demo,
        "settle": _settle,
        "openapi": _openapi,
        "log-key": _log_key,
    }
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
