"""Hugging Face datasets: `save_to_disk` folders (Arrow IPC streams) and Hub repo layouts."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import Any

import yaml

from app.domain.problems import Problem, Severity
from app.formats.arrow_ipc import read_stream
from app.formats.arrow_types import ArrowFormatError
from app.formats.base import FormatReport
from app.formats.files import (
    Claim,
    FileEntry,
    ScanContext,
    empty_file_problem,
    join,
    open_binary,
    part_path,
    problem_for_os_error,
    read_small,
    under,
)
from app.formats.jsondata import JsonTooDeep, load_data_json
from app.formats.parquet import read_parquet_meta
from app.formats.schema import arrow_schema

SIDECAR_LIMIT = 16 * 1024 * 1024
# Shard names the Hub and `push_to_hub` write: train-00000-of-00003.parquet
_SHARD = re.compile(r"^(?P<split>[A-Za-z0-9_.]+?)(?:-\d{5}-of-\d{5})?(?:-[0-9a-f]+)?\.parquet$")


def find_save_to_disk(ctx: ScanContext, available: set[str]) -> list[Claim]:
    """Folders holding state.json + dataset_info.json; a dataset_dict.json groups splits."""
    folders = sorted(
        PurePosixPath(r).parent.as_posix()
        for r in available
        if PurePosixPath(r).name == "state.json" and join(_dir(r), "dataset_info.json") in available
    )
    folders = [_undot(f) for f in folders]
    claims: list[Claim] = []
    grouped: dict[str, list[str]] = {}
    for folder in folders:
        parent = _undot(PurePosixPath(folder).parent.as_posix()) if folder else ""
        if folder and join(parent, "dataset_dict.json") in available:
            grouped.setdefault(parent, []).append(folder)
        else:
            grouped.setdefault(folder, []).append(folder)
    for root, split_dirs in grouped.items():
        ctx.check_cancel()
        report = FormatReport(format="hf-save-to-disk", path=part_path(root))
        claim = Claim(report)
        splits: dict[str, int | None] = {}
        total: int | None = 0
        for split_dir in split_dirs:
            rows = _one_save_to_disk(ctx, split_dir, available, claim)
            if split_dir != root:
                splits[PurePosixPath(split_dir).name] = rows
            total = None if rows is None or total is None else total + rows
        if join(root, "dataset_dict.json") in available:
            claim.files.add(join(root, "dataset_dict.json"))
            report.details["splits"] = splits
        report.record_count = total
        claims.append(claim)
    return claims


def _dir(rel: str) -> str:
    return _undot(PurePosixPath(rel).parent.as_posix())


def _undot(folder: str) -> str:
    return "" if folder == "." else folder


def _load_json(ctx: ScanContext, rel: str, problems: list[Problem]) -> Any:
    raw = read_small(ctx.entries[rel], SIDECAR_LIMIT, problems)
    if raw is None:
        return None
    try:
        return load_data_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, JsonTooDeep) as exc:
        problems.append(Problem(Severity.ERROR, f"'{rel}' is not valid JSON: {exc}.", rel))
        return None


def _one_save_to_disk(
    ctx: ScanContext, folder: str, available: set[str], claim: Claim
) -> int | None:
    report = claim.report
    state_rel, info_rel = join(folder, "state.json"), join(folder, "dataset_info.json")
    claim.files.update({state_rel, info_rel})
    state = _load_json(ctx, state_rel, report.problems)
    info = _load_json(ctx, info_rel, report.problems)
    if (
        isinstance(info, dict)
        and isinstance(info.get("features"), dict)
        and not report.details.get("features")
    ):
        report.details["features"] = {
            str(k): str(v.get("dtype") or v.get("_type")) if isinstance(v, dict) else str(v)
            for k, v in info["features"].items()
        }
    names: list[str] = []
    if isinstance(state, dict) and isinstance(state.get("_data_files"), list):
        names = [str(d.get("filename")) for d in state["_data_files"] if isinstance(d, dict)]
    arrow_files = {r for r in available if _dir(r) == folder and r.endswith(".arrow")}
    claim.files.update(arrow_files)
    total: int | None = 0
    for name in names:
        rel = join(folder, name)
        if rel not in ctx.entries:
            report.problems.append(
                Problem(Severity.ERROR, f"'{rel}' is listed in {state_rel} but missing.", rel)
            )
            total = None
            continue
        rows = _arrow_rows(ctx, ctx.entries[rel], report)
        total = None if rows is None or total is None else total + rows
    for rel in sorted(arrow_files - {join(folder, n) for n in names}):
        report.problems.append(
            Problem(Severity.WARNING, f"'{rel}' is not listed in {state_rel}.", rel)
        )
    return total


def _arrow_rows(ctx: ScanContext, entry: FileEntry, report: FormatReport) -> int | None:
    """Rows of one Arrow IPC stream, from its record batches' headers (no data is read)."""
    if entry.size == 0:
        report.problems.append(empty_file_problem(entry.rel))
        return None
    try:
        with open_binary(entry.path) as fh:
            fields, rows = read_stream(fh, entry.size, ctx.check_cancel)
        if not report.schema:
            report.schema, report.details["arrowSchema"] = arrow_schema(fields)
    except (PermissionError, FileNotFoundError) as exc:
        report.problems.append(problem_for_os_error(exc, entry.rel))
        return None
    except (OSError, ArrowFormatError) as exc:
        report.problems.append(
            Problem(
                Severity.ERROR,
                f"'{entry.rel}' is not a readable Arrow stream (truncated or corrupt): {exc}",
                entry.rel,
            )
        )
        return None
    return rows


def find_hub(ctx: ScanContext, available: set[str]) -> list[Claim]:
    """Repo folders with data/**.parquet, named as shards or described by a README card."""
    roots: set[str] = set()
    for rel in available:
        parts = rel.split("/")
        if rel.endswith(".parquet") and "data" in parts[:-1]:
            roots.add("/".join(parts[: parts.index("data")]))
    claims: list[Claim] = []
    for root in sorted(roots):
        data_dir = join(root, "data")
        shards = sorted(r for r in available if under(data_dir, r) and r.endswith(".parquet"))
        readme = join(root, "README.md")
        card = _card(ctx, readme) if readme in available else None
        if card is None and not all(_split_of(data_dir, r) for r in shards):
            continue
        claims.append(_hub_claim(ctx, root, shards, readme if card is not None else None, card))
    return claims


def _card(ctx: ScanContext, readme: str) -> dict[str, Any] | None:
    """The YAML front matter of a dataset card, when it has one."""
    problems: list[Problem] = []
    raw = read_small(ctx.entries[readme], SIDECAR_LIMIT, problems)
    if raw is None:
        return None
    text = raw.decode("utf-8", errors="replace")
    match = re.match(r"\A---\r?\n(.*?)\r?\n---\s*(?:\r?\n|\Z)", text, re.S)
    if match is None:
        return None
    try:
        loaded = yaml.safe_load(match.group(1))
    except (yaml.YAMLError, RecursionError):  # RecursionError: nested thousands of levels
        return None
    return loaded if isinstance(loaded, dict) else None


def _split_of(data_dir: str, rel: str) -> str | None:
    inner = rel[len(data_dir) + 1 :].split("/")
    if len(inner) > 1:
        return inner[0]
    match = _SHARD.match(inner[0])
    return match.group("split") if match else None


def _hub_claim(
    ctx: ScanContext, root: str, shards: Iterable[str], readme: str | None, card: Any
) -> Claim:
    report = FormatReport(format="hf-hub", path=part_path(root))
    claim = Claim(report)
    data_dir = join(root, "data")
    splits: dict[str, int | None] = {}
    total: int | None = 0
    for rel in shards:
        ctx.check_cancel()
        claim.files.add(rel)
        split = _split_of(data_dir, rel) or "train"
        meta = read_parquet_meta(ctx.entries[rel], report.problems)
        rows = None if meta is None else meta[0]
        if meta is not None and not report.schema:
            report.schema, report.details["arrowSchema"] = arrow_schema(meta[1])
        if split in splits:
            prev = splits[split]
            splits[split] = None if prev is None or rows is None else prev + rows
        else:
            splits[split] = rows
        total = None if rows is None or total is None else total + rows
    report.record_count = total
    report.details["splits"] = splits
    if readme is not None:
        claim.files.add(readme)
        if isinstance(card, dict):
            for key in ("license", "pretty_name", "task_categories", "language"):
                if key in card:
                    report.details[key] = card[key]
    gitattributes = join(root, ".gitattributes")
    if gitattributes in ctx.entries:
        claim.files.add(gitattributes)
    return claim
