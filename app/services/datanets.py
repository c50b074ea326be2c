"""Datanets for the contributor: the list the picker and `contributor-desk datanets` show (kept
in the catalogue for offline use), and the rule check of one item against one datanet.

Why one service: the review sheet, the picker's live check and `submit` must judge an item
exactly alike, and exactly as the registry will (app.domain.datanet_rules, the evaluator the
registry runs). The check reads the item's files and digests and the parts of its stored format
report; for "no exact duplicates" it asks the registry which of the digests the datanet's
accepted contributions hold (only digests leave the machine).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from app.domain.datanet_rules import (
    DatanetRules,
    Part,
    RuleProblem,
    evaluate,
    parts_from_report,
)
from app.domain.errors import KnownError, NotFoundError, RegistryUnavailable
from app.registry_client.api import DatanetInfo, RegistryClient
from app.services.context import ServiceContext
from app.signing.statement import normalise_registry
from app.store.datanet_models import CachedDatanet
from app.store.models import Item, utcnow

log = logging.getLogger(__name__)

RULE_LABELS = {
    "kind_not_accepted": "Kind",
    "license_not_accepted": "License",
    "format_not_accepted": "File type",
    "too_many_files": "Number of files",
    "too_large": "Total size",
    "missing_columns": "Required columns",
    "too_few_records": "Minimum records",
    "duplicate_file": "No duplicates",
}


def problem_text(problem: RuleProblem) -> str:
    """'file: message (Rule rule)', as the sheet and the CLI show a violation."""
    label = RULE_LABELS.get(problem.code, problem.code)
    where = f"{problem.path}: " if problem.path else ""
    return f"{where}{problem.message} ({label} rule)"


@dataclass(frozen=True, slots=True)
class DatanetView:
    id: str
    name: str
    description: str
    owner: str | None
    rules_json: dict[str, Any]
    rules_version: int
    fetched_at: datetime | None

    @property
    def rules(self) -> DatanetRules:
        return DatanetRules.from_json(self.rules_json)

    def rule_lines(self) -> list[str]:
        try:
            return self.rules.summary()
        except ValueError as exc:
            return [f"Rules this app cannot read: {exc}"]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "owner": self.owner,
            "rules": self.rules_json,
            "rulesVersion": self.rules_version,
        }


@dataclass(frozen=True, slots=True)
class DatanetListing:
    items: tuple[DatanetView, ...]
    offline: bool  # the registry could not be reached: these come from the cache
    note: str = ""


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """An item judged against a datanet. `problems` block signing; `note` says what could not
    be checked (offline), which does not block: the registry checks again."""

    datanet: str
    problems: tuple[RuleProblem, ...]
    checked: bool
    rules_version: int | None
    note: str = ""
    view: DatanetView | None = None

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(problem_text(p) for p in self.problems)


def _view(row: CachedDatanet) -> DatanetView:
    return DatanetView(
        row.id,
        row.name,
        row.description,
        row.owner,
        dict(row.rules),
        row.rules_version,
        row.fetched_at,
    )


class DatanetService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    @property
    def _registry(self) -> str:
        return normalise_registry(self._ctx.registry_url)

    # -- the cached list -----------------------------------------------------------------
    def cached(self) -> list[DatanetView]:
        with self._ctx.db.session() as s:
            rows = s.scalars(
                select(CachedDatanet)
                .where(CachedDatanet.registry_url == self._registry)
                .order_by(CachedDatanet.id)
            ).all()
            return [_view(r) for r in rows]

    def cached_one(self, datanet: str) -> DatanetView | None:
        with self._ctx.db.session() as s:
            row = s.get(CachedDatanet, (self._registry, datanet))
            return _view(row) if row is not None else None

    def _store(self, infos: Sequence[DatanetInfo], *, replace: bool) -> None:
        now = utcnow()
        with self._ctx.db.session() as s:
            if replace:
                s.execute(delete(CachedDatanet).where(CachedDatanet.registry_url == self._registry))
            for info in infos:
                s.merge(
                    CachedDatanet(
                        registry_url=self._registry,
                        id=info.id,
                        name=info.name,
                        description=info.description,
                        owner=info.owner,
                        rules=info.rules,
                        rules_version=info.rules_version,
                        fetched_at=now,
                    )
                )

    def listing(self, client: RegistryClient) -> DatanetListing:
        """The registry's datanets (cached as they arrive), or the cache when it is offline."""
        try:
            infos = client.datanets()
        except RegistryUnavailable as exc:
            items = tuple(self.cached())
            when = min((v.fetched_at for v in items if v.fetched_at), default=None)
            note = (
                f"The registry is offline ({exc.message}); datanets as of "
                f"{when:%Y-%m-%d %H:%M} UTC."
                if when
                else f"The registry is offline ({exc.message}) and no datanets are cached yet."
            )
            return DatanetListing(items, True, note)
        self._store(infos, replace=True)
        return DatanetListing(tuple(self.cached()), False)

    def lookup(self, datanet: str, client: RegistryClient) -> tuple[DatanetView | None, bool]:
        """(datanet, online): fresh from the registry (and cached), else from the cache.
        NotFoundError when the registry answers that it has no such datanet."""
        try:
            info = client.datanet(datanet)
        except RegistryUnavailable:
            return self.cached_one(datanet), False
        except KnownError as exc:
            with self._ctx.db.session() as s:
                s.execute(
                    delete(CachedDatanet).where(
                        CachedDatanet.registry_url == self._registry, CachedDatanet.id == datanet
                    )
                )
            raise NotFoundError(
                f"the registry has no datanet {datanet!r} ({exc.message})",
                hint="see `contributor-desk datanets` for the ones it has",
            ) from None
        self._store([info], replace=False)
        return self.cached_one(datanet), True

    # -- the rule check ------------------------------------------------------------------
    def check_item(self, item_id: int, datanet: str, client: RegistryClient) -> RuleCheck:
        """Judge the item as the registry will; offline, by the cached rules."""
        from app.services.recheck import catalogued_files

        view, online = self.lookup(datanet, client)
        if view is None:
            return RuleCheck(
                datanet,
                (),
                False,
                None,
                "The registry is offline and this datanet's rules are not cached, so they "
                "were not checked here; the registry checks them when the contribution arrives.",
            )
        try:
            rules = view.rules
        except ValueError as exc:
            return RuleCheck(
                datanet,
                (),
                False,
                view.rules_version,
                f"This datanet's rules could not be read ({exc}); the registry checks them.",
                view,
            )
        with self._ctx.db.session() as s:
            item = s.get(Item, item_id)
            if item is None:
                raise NotFoundError(f"there is no item #{item_id} in the catalogue")
            kind, license_ = item.kind, item.license or ""
            parts: list[Part] = parts_from_report(item.report or {})
            rows = catalogued_files(s, item_id)
        files = [(f.path, f.size) for f in rows]
        digests = {f.path: f.sha256 for f in rows}
        notes = []
        if not online:
            notes.append(
                "The registry is offline: checked against the rules cached "
                + (f"{view.fetched_at:%Y-%m-%d %H:%M} UTC" if view.fetched_at else "earlier")
                + "; the registry checks again when the contribution arrives."
            )
        held: set[str] = set()
        if rules.no_duplicates:
            try:
                if not online:
                    raise RegistryUnavailable("offline")
                held = client.held_digests(datanet, sorted(set(digests.values())))
            except RegistryUnavailable:
                notes.append("Duplicates of the datanet's content could not be checked offline.")
        problems = evaluate(
            rules,
            kind=kind,
            license=license_,
            files=files,
            parts=parts,
            digests=digests,
            held=held,
        )
        return RuleCheck(datanet, tuple(problems), True, view.rules_version, " ".join(notes), view)


def declared_parts(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The create metadata's `parts` (the registry judges content rules by these)."""
    return [p.to_json() for p in parts_from_report(report)]
