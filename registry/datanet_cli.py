"""`contributor-registry datanet create|list|show|update`: datanets for a registry's operator.

The same service functions as the HTTP routes (registry.datanets), so rules are validated and
versioned the same way; an operator may edit any datanet, and a datanet made here belongs to
the key given with --owner, or to nobody (the operator) without it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pydantic import ValidationError

DEFAULT_DB = "sqlite:///registry.sqlite3"


def add_parser(sub: Any) -> None:
    net = sub.add_parser("datanet", help="create, list, show or update datanets")
    verbs = net.add_subparsers(dest="datanet_command", required=True)
    create = verbs.add_parser("create", help="a new datanet (rules version 1)")
    create.add_argument("id", help="3-64 lowercase letters, digits and '-'")
    create.add_argument("--name", required=True)
    create.add_argument("--description", default="")
    create.add_argument("--rules", default="{}", help='rules as JSON, e.g. {"formats":["csv"]}')
    create.add_argument("--owner", default=None, help="fingerprint of the owning key")
    listing = verbs.add_parser("list", help="every datanet")
    listing.add_argument("--json", action="store_true")
    show = verbs.add_parser("show", help="one datanet as JSON")
    show.add_argument("id")
    update = verbs.add_parser("update", help="change a datanet (a rules change bumps the version)")
    update.add_argument("id")
    update.add_argument("--name", default=None)
    update.add_argument("--description", default=None)
    update.add_argument("--rules", default=None, help="the new rules as JSON (replace the old)")
    for p in (create, listing, show, update):
        p.add_argument("--db", default=DEFAULT_DB)


def _fail(message: str, code: int = 2) -> int:
    print(f"contributor-registry: error: {message}", file=sys.stderr)
    return code


def _rules(text: str) -> Any:
    from registry.datanets import DatanetRules

    try:
        return DatanetRules.model_validate(json.loads(text))
    except (ValueError, ValidationError) as exc:
        raise ValueError(f"--rules is not valid rules JSON: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from registry.datanets import (
        DatanetCreate,
        DatanetUpdate,
        create_datanet,
        datanet_out,
        update_datanet,
    )
    from registry.db.models import Datanet
    from registry.db.session import make_engine, make_sessionmaker, migrate
    from registry.errors import ApiError

    engine = make_engine(args.db)
    migrate(engine)
    try:
        with make_sessionmaker(engine)() as session:
            command = args.datanet_command
            if command == "list":
                rows = [datanet_out(r) for r in session.query(Datanet).order_by(Datanet.id)]
                if args.json:
                    print(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
                for r in [] if args.json else rows:
                    owner = r.owner[:16] if r.owner else "operator"
                    print(f"{r.id}\t{r.name}\trules v{r.rulesVersion}\towner {owner}")
                return 0
            if command == "show":
                row = session.get(Datanet, args.id)
                if row is None:
                    return _fail(f"there is no datanet {args.id!r}", 3)
                print(json.dumps(datanet_out(row).model_dump(mode="json"), indent=2))
                return 0
            if command == "create":
                body = DatanetCreate(
                    id=args.id,
                    name=args.name,
                    description=args.description,
                    rules=_rules(args.rules),
                )
                row = create_datanet(session, body, args.owner)
            else:
                body_u = DatanetUpdate(
                    name=args.name,
                    description=args.description,
                    rules=_rules(args.rules) if args.rules is not None else None,
                )
                row = update_datanet(session, args.id, body_u, None)
            out = datanet_out(row)
            print(f"datanet {out.id} rules v{out.rulesVersion}")
            return 0
    except ApiError as exc:
        return _fail(exc.message, 3)
    except ValidationError as exc:
        return _fail(
            "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()), 3
        )
    except ValueError as exc:
        return _fail(str(exc), 3)
    finally:
        engine.dispose()
