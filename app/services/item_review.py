"""What a contributor checks before signing: the review of an item, and editing its details.

Why here and not in the GUI: the review evaluates the datanet's rules with the same domain
evaluator the registry and `submit` use, so the sheet can never approve what the registry
will reject for a rule. Editing a draft's title or license changes what the signed statement
says, so a signed item goes back to draft (its signature no longer describes it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.domain.errors import BadInputError, KnownError, NotFoundError
from app.domain.states import State
from app.registry_client.api import RegistryClient
from app.services.context import ServiceContext
from app.services.datanets import DatanetView
from app.services.history import record_event, transition
from app.services.signing import datanet_for
from app.store.models import Item

EDITABLE_STATES = (State.DRAFT, State.SIGNED, State.REJECTED)
MAX_TITLE = 200
MAX_DESCRIPTION = 5000
_SPDX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+\-]{0,63}$")


@dataclass(frozen=True, slots=True)
class SubmitReview:
    """The review sheet's content. `problems` block signing; `note` explains a rule check
    that could not run (offline), which does not block: the registry checks again."""

    item_id: int
    title: str
    license: str
    kind: str
    datanet: str
    registry_url: str
    file_count: int
    total_size: int
    problems: tuple[str, ...]
    rules_checked: bool
    note: str = ""
    description: str = ""
    datanet_name: str = ""
    datanet_owner: str | None = None
    datanet_description: str = ""
    rule_lines: tuple[str, ...] = ()
    rules_version: int | None = None
    choices: tuple[DatanetView, ...] = ()  # the datanets to pick from (with choices=True)
    choices_note: str = ""

    @property
    def ready(self) -> bool:
        return not self.problems


def review_item(
    ctx: ServiceContext,
    item_id: int,
    *,
    datanet: str | None = None,
    client: RegistryClient | None = None,
    choices: bool = False,
) -> SubmitReview:
    """Title, license, datanet and the datanet's rules for one item (rules need no sign-in);
    the rule check is app.services.datanets' (the one `submit` and the registry apply)."""
    from app.services.clients import make_client
    from app.services.datanets import DatanetService

    net = datanet_for(ctx, datanet)
    with ctx.db.session() as s:
        item = s.get(Item, item_id)
        if item is None:
            raise NotFoundError(f"there is no item #{item_id} in the catalogue")
        title, license_, kind = item.title, item.license or "", item.kind
        description = item.description or ""
        count, size = item.file_count, item.total_size
    problems: list[str] = []
    if not license_:
        problems.append("No license is chosen: edit the details and choose one.")
    own = client is None
    client = client or make_client(ctx)
    checked, note, view, version = False, "", None, None
    listing = None
    try:
        if choices:
            listing = DatanetService(ctx).listing(client)
        check = DatanetService(ctx).check_item(item_id, net, client)
        problems += check.texts
        checked, note, view, version = check.checked, check.note, check.view, check.rules_version
    except KnownError as exc:
        problems.append(f"Datanet {net!r}: {exc.message}.")
    finally:
        if own:
            client.close()
    return SubmitReview(
        item_id=item_id,
        title=title,
        license=license_,
        kind=kind,
        datanet=net,
        registry_url=ctx.registry_url,
        file_count=count,
        total_size=size,
        problems=tuple(problems),
        rules_checked=checked,
        note=note,
        description=description,
        datanet_name=view.name if view else "",
        datanet_owner=view.owner if view else None,
        datanet_description=view.description if view else "",
        rule_lines=tuple(view.rule_lines()) if view else (),
        rules_version=version,
        choices=listing.items if listing else (),
        choices_note=listing.note if listing else "",
    )


def update_details(
    ctx: ServiceContext, item_id: int, *, title: str, license: str, description: str | None = None
) -> None:
    """Change a draft's title, license and description (a signed item whose title or license
    changes goes back to draft: the statement it signed says otherwise)."""
    title = " ".join(title.split())
    license = license.strip()
    if description is not None:
        description = description.strip()
        if len(description) > MAX_DESCRIPTION:
            raise BadInputError(
                f"the description is {len(description):,} characters long",
                hint=f"keep it under {MAX_DESCRIPTION:,}",
            )
    if not title:
        raise BadInputError("the title is empty", hint="give the item a short descriptive title")
    if len(title) > MAX_TITLE:
        raise BadInputError(
            f"the title is {len(title)} characters long", hint=f"keep it under {MAX_TITLE}"
        )
    if license and not _SPDX.match(license):
        raise BadInputError(
            f"“{license}” is not an SPDX license id",
            hint="pick one from the list, or type an id such as CC-BY-4.0",
        )
    with ctx.db.session() as s:
        item = s.get(Item, item_id)
        if item is None:
            raise NotFoundError(f"there is no item #{item_id} in the catalogue")
        state = State(item.state)
        if state not in EDITABLE_STATES:
            raise BadInputError(
                f"item #{item_id} is {state.value}; its details are fixed now",
                hint="only drafts, signed and rejected items can be edited",
            )
        changes = []
        if description is not None and (item.description or "") != description:
            item.description = description
            changes.append("description")
        if item.title != title:
            changes.append(f"title “{item.title}” → “{title}”")
        if (item.license or "") != license:
            changes.append(f"license {item.license or 'none'} → {license or 'none'}")
        if not changes:
            return
        signed_fields_changed = item.title != title or (item.license or "") != license
        item.title, item.license = title, license
        detail = "; ".join(changes)
        if state is State.DRAFT:
            transition(s, item, State.DRAFT, "edited", detail)
        elif signed_fields_changed:
            transition(s, item, State.DRAFT, "edited", detail + "; sign again to submit")
        else:  # only the description (not part of the signed statement)
            record_event(s, item, "edited", detail)
