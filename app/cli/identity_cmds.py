"""`identity init|show|export|import|rotate`, `sign` and `verify` from the command line.

Passphrases come from --passphrase-file, CONTRIBUTOR_DESK_PASSPHRASE or an interactive prompt
on a terminal — never from a plain command-line argument (it would show up in `ps` and in
shell history).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.output import print_json
from app.domain.errors import BadInputError, IdentityError, UsageError
from app.domain.limits import MAX_PASSPHRASE_BYTES, TooLarge, read_first_line
from app.domain.units import plural
from app.settings import write_private_file

if TYPE_CHECKING:  # services are imported on use: `--help` and `list` must start fast
    from app.services.context import ServiceContext
    from app.services.identity import IdentityInfo

ENV_PASSPHRASE = "CONTRIBUTOR_DESK_PASSPHRASE"


class Passphrases:
    """Gets a passphrase from the file, the environment or the terminal, in that order."""

    def __init__(self, passphrase_file: Path | None) -> None:
        self._file = passphrase_file

    def get(self, prompt: str, *, confirm: bool = False, why: str = "") -> str:
        from app.services.identity import PassphraseRequired

        if self._file is not None:
            try:
                text = read_first_line(self._file, MAX_PASSPHRASE_BYTES, "its first line")
            except OSError as exc:
                raise UsageError(
                    f"cannot read passphrase file {self._file}: {exc.strerror}"
                ) from None
            except TooLarge as exc:
                raise UsageError(f"passphrase file {self._file}: {exc}") from None
            except UnicodeDecodeError:
                raise UsageError(f"passphrase file {self._file} is not UTF-8 text") from None
            lines = text.splitlines()
            return lines[0] if lines else ""
        env = os.environ.get(ENV_PASSPHRASE)
        if env is not None:
            return env
        if sys.stdin.isatty():
            first = getpass.getpass(prompt)
            if confirm and getpass.getpass("Repeat it: ") != first:
                raise IdentityError("the two passphrases differ; nothing was changed")
            return first
        raise PassphraseRequired(
            why or "a passphrase is needed",
            hint=f"give it with --passphrase-file FILE or {ENV_PASSPHRASE}",
        )


class _RefusePassphraseArgument(argparse.Action):
    """`--passphrase SECRET` would land in shell history and `ps`: refuse it, without echo."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        parser.error(
            "a passphrase is never taken on the command line (others could read it); "
            f"use --passphrase-file FILE, {ENV_PASSPHRASE} or the prompt"
        )


def _add_passphrase_file(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--passphrase-file",
        type=Path,
        metavar="FILE",
        help=f"read the passphrase from FILE (first line); or set {ENV_PASSPHRASE}",
    )
    p.add_argument("--passphrase", action=_RefusePassphraseArgument, help=argparse.SUPPRESS)


def register(sub: argparse._SubParsersAction[Any]) -> None:
    ident = sub.add_parser("identity", help="your signing key: create, show, back up, restore")
    isub = ident.add_subparsers(
        dest="identity_command", metavar="ACTION", required=True, parser_class=type(ident)
    )

    p = isub.add_parser("init", help="create your key pair")
    p.add_argument(
        "--key-file",
        action="store_true",
        help="keep the key in a passphrase-protected file instead of the OS keyring",
    )
    p.add_argument("--json", action="store_true")
    _add_passphrase_file(p)
    p.set_defaults(func=cmd_init)

    p = isub.add_parser("show", help="show your public key and fingerprint")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = isub.add_parser("export", help="write an encrypted backup of your key")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    _add_passphrase_file(p)
    p.set_defaults(func=cmd_export)

    p = isub.add_parser("import", help="restore your key from an encrypted backup")
    p.add_argument("file", type=Path, metavar="FILE")
    p.add_argument("--key-file", action="store_true", help="keep it in an encrypted file")
    p.add_argument("--json", action="store_true")
    _add_passphrase_file(p)
    p.set_defaults(func=cmd_import)

    p = isub.add_parser("rotate", help="replace your key with a new one signed by the old one")
    p.add_argument("--out", type=Path, metavar="FILE", help="also write the rotation statement")
    p.add_argument("--key-file", action="store_true", help="keep the new key in a file")
    p.add_argument("--json", action="store_true")
    _add_passphrase_file(p)
    p.set_defaults(func=cmd_rotate)

    p = sub.add_parser("sign", help="sign an item for the registry (DSSE envelope)")
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="envelope file")
    p.add_argument("--datanet", help="datanet id (default: the one in settings)")
    p.add_argument("--manifest-out", type=Path, metavar="FILE", help="also write the manifest")
    p.add_argument("--json", action="store_true")
    _add_passphrase_file(p)
    p.set_defaults(func=cmd_sign)

    p = sub.add_parser("verify", help="check a signed envelope (and the files it names)")
    p.add_argument("envelope", type=Path, metavar="ENVELOPE")
    p.add_argument("--manifest", type=Path, metavar="FILE", help="the signed manifest.json")
    p.add_argument("--data", type=Path, metavar="DIR", help="check every file's hash in DIR")
    p.add_argument(
        "--registry", dest="expected_registry", metavar="URL", help="registry it must be for"
    )
    p.add_argument("--datanet", dest="expected_datanet", help="datanet it must be for")
    p.add_argument(
        "--public-key",
        action="append",
        default=[],
        metavar="HEX",
        help="trust this public key too (default: your own keys)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)


def _print_info(info: IdentityInfo, title: str) -> None:
    print(title)
    print(f"  fingerprint: {info.grouped}")
    print(f"  public key:  {info.public_key}")
    where = info.key_file if info.storage == "encrypted-file" else info.backend
    print(f"  stored in:   {info.storage} ({where})")
    if info.note:
        print(f"  note:        {info.note}")


def cmd_init(args: argparse.Namespace, ctx: ServiceContext) -> int:
    from app.services.identity import IdentityService, PassphraseRequired

    svc = IdentityService(ctx)
    phr = Passphrases(args.passphrase_file)
    try:
        info = svc.init(None, use_key_file=args.key_file)
    except PassphraseRequired as exc:
        sys.stderr.write(f"note: {exc.reason}; your key will be kept in an encrypted key file\n")
        pw = phr.get("New passphrase for the encrypted key file: ", confirm=True, why=exc.message)
        info = svc.init(pw, use_key_file=args.key_file)
    if args.json:
        print_json({**info.to_dict(), "note": info.note})
    else:
        _print_info(info, "Created your identity.")
    return 0


def cmd_show(args: argparse.Namespace, ctx: ServiceContext) -> int:
    from app.services.identity import IdentityService, format_fingerprint

    shown = IdentityService(ctx).show()
    if args.json:
        print_json(shown)
        return 0
    print(f"fingerprint: {shown['grouped']}")
    print(f"public key:  {shown['publicKey']}")
    print(
        f"storage:     {shown['storage']}" + (f" ({shown['keyFile']})" if shown["keyFile"] else "")
    )
    secure = "" if shown["backendSecure"] else " — not secure, keys are not stored there"
    print(f"keyring:     {shown['backend']}{secure}")
    if shown["rotatedFrom"]:
        print(f"replaces:    {format_fingerprint(shown['rotatedFrom'])}")
    return 0


def cmd_export(args: argparse.Namespace, ctx: ServiceContext) -> int:
    from app.services.identity import IdentityService

    path: Path = args.file
    if path.exists() and not args.force:
        raise UsageError(f"{path} already exists", hint="choose another name or pass --force")
    phr = Passphrases(args.passphrase_file)
    pw = phr.get("Passphrase for the backup: ", confirm=True)
    info = IdentityService(ctx).export(
        path, pw, unlock=lambda: phr.get("Passphrase of your key file: ")
    )
    print(f"Encrypted backup of {info.grouped} written to {path}")
    print("Keep it and its passphrase safe: without both, the key cannot be restored.")
    return 0


def cmd_import(args: argparse.Namespace, ctx: ServiceContext) -> int:
    from app.services.identity import IdentityService

    if not args.file.is_file():
        raise BadInputError(f"key file {args.file} does not exist")
    pw = Passphrases(args.passphrase_file).get("Passphrase of the backup: ")
    info = IdentityService(ctx).import_(args.file, pw, use_key_file=args.key_file)
    if args.json:
        print_json({**info.to_dict(), "note": info.note})
    else:
        _print_info(info, "Imported your identity.")
    return 0


def cmd_rotate(args: argparse.Namespace, ctx: ServiceContext) -> int:
    from app.services.identity import IdentityService, format_fingerprint

    svc = IdentityService(ctx)
    phr = Passphrases(args.passphrase_file)
    needs_file = svc.new_key_needs_passphrase(use_key_file=args.key_file)
    pw = phr.get("Passphrase for the key file: ") if needs_file else None
    info, envelope = svc.rotate(
        pw,
        unlock=pw if pw is not None else (lambda: phr.get("Passphrase of your key file: ")),
        use_key_file=args.key_file,
    )
    if args.out is not None:
        write_private_file(args.out, (json.dumps(envelope, indent=2) + "\n").encode("utf-8"))
    if args.json:
        print_json({**info.to_dict(), "rotationStatement": envelope})
    else:
        _print_info(info, "Rotated your identity; the old key signed the new one.")
        if info.rotated_from:
            print(f"  replaces:    {format_fingerprint(info.rotated_from)}")
    return 0


def cmd_sign(args: argparse.Namespace, ctx: ServiceContext) -> int:
    from app.services.identity import format_fingerprint
    from app.services.signing import SigningService

    phr = Passphrases(args.passphrase_file)
    result = SigningService(ctx).sign_item(
        args.id,
        registry_url=ctx.registry_url,
        datanet=args.datanet,
        passphrase=lambda: phr.get("Passphrase of your key file: "),
    )
    write_private_file(args.out, (json.dumps(result.envelope, indent=2) + "\n").encode("utf-8"))
    if args.manifest_out is not None:
        write_private_file(args.manifest_out, result.manifest)
    if args.json:
        print_json(
            {
                "itemId": result.item_id,
                "fingerprint": result.keyid,
                "manifestDigest": result.manifest_digest,
                "registry": result.registry_url,
                "datanet": result.datanet,
                "envelope": str(args.out),
            }
        )
        return 0
    print(f"Signed item #{result.item_id} with key {format_fingerprint(result.keyid)}")
    print(f"  registry: {result.registry_url}   datanet: {result.datanet or '(none)'}")
    print(f"  manifest: sha256 {result.manifest_digest}")
    print(f"  envelope: {args.out}")
    return 0


def cmd_verify(args: argparse.Namespace, ctx: ServiceContext) -> int:
    from app.services.signing import SigningService

    registry = args.expected_registry or args.registry
    result = SigningService(ctx).verify_envelope_file(
        args.envelope,
        args.manifest,
        args.data,
        registry=registry,
        datanet=args.expected_datanet,
        public_keys=args.public_key,
    )
    if args.json:
        print_json(result.to_dict())
        return 0 if result.ok else BadInputError.exit_code
    p = result.statement.predicate
    print(f"Envelope {args.envelope}: signed by {result.to_dict()['grouped']}")
    print(f"  {p.kind} {p.title!r} for registry {p.registry}, datanet {p.datanet or '(none)'}")
    for line in result.checked:
        print(f"  checked: {line}")
    if registry is None:
        print("  not checked: registry (pass --registry URL)")
    if args.manifest is None and args.data is None:
        print("  not checked: manifest and files (pass --manifest FILE and --data DIR)")
    for problem in result.problems:
        print(f"  FAIL: {problem.path}: {problem.message}")
    if not result.ok:
        sys.stderr.write(
            f"error: {plural(len(result.problems), 'file')} no longer "
            f"{'matches' if len(result.problems) == 1 else 'match'} the signed manifest\n"
        )
        return BadInputError.exit_code
    return 0
