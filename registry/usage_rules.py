"""What makes a usage event valid, and the limits of usage and money (docs/protocol.md,
"Usage ingestion" and "Limits of usage and money").

`quick_weights` is the hot path of ingestion (one event at a time, no reasons built);
`validate` lists every reason of an event the quick path refused; the two must agree.
`room_reason` and `overfilled` name the money limit an otherwise valid event would cross.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Protocol

from app.domain.rewards import PPM
from registry.db.models import STATE_ACCEPTED
from registry.db.usage_models import METHODS

MAX_EVENT_ID_LENGTH = 128
MAX_ATTRIBUTIONS = 100
MAX_WEIGHT = 1_000_000
# Money limits in micro-units (docs/protocol.md, "Limits of usage and money"). Every sum the
# database computes from them stays below 2**63 - 1 (about 9.2e18).
MAX_FEE_MICRO = 10**15  # one event: one billion units
MAX_BATCH_FEE_MICRO = 10**17  # the accepted fees of one batch (also bounds a protocol entry)
MAX_BUCKET_REWARD_MICRO = 10**17  # one day bucket's rewardMicro
MAX_BUCKET_EVENTS = 10**12  # one day bucket's events (sharePpm <= 10**6 per event: <= 10**18)
MAX_LEDGER_TOTAL_MICRO = 10**18  # all ledger entries (= all stored fees) together
# A batch's increment of one bucket is at most its fee total, so a new bucket row is always
# within the limit and a stored one plus an increment never overflows during the check.
assert MAX_BATCH_FEE_MICRO <= MAX_BUCKET_REWARD_MICRO <= MAX_LEDGER_TOTAL_MICRO < 2**62
FUTURE_SKEW = timedelta(minutes=5)
_METHOD_SET = frozenset(METHODS)


class AttributionLike(Protocol):
    """What ingestion reads of one attribution: an `AttributionIn`, or the HTTP body's model as
    it is (no copy per event on the request path)."""

    @property
    def contribution_id(self) -> str: ...
    @property
    def weight(self) -> float | int: ...
    @property
    def method(self) -> str: ...


class EventLike(Protocol):
    """What ingestion reads of one event (`EventIn`, or the HTTP body's model)."""

    @property
    def event_id(self) -> str: ...
    @property
    def model_id(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def fee_micro(self) -> int: ...
    @property
    def attributions(self) -> Sequence[AttributionLike]: ...


@dataclass(frozen=True)
class Reason:
    """Why an event was rejected: a stable code for programs and a sentence for people."""

    code: str
    message: str
    path: str | None = None


@dataclass(frozen=True)
class Owner:
    owner: str
    state: str


def weight_to_ppm(weight: float | int) -> int | None:
    """A weight in [0, MAX_WEIGHT] as integer ppm (6 decimals, half-even); None if it is not a
    number or out of range (the caller reports which)."""
    if isinstance(weight, bool):
        return None
    if isinstance(weight, float) and not math.isfinite(weight):
        return None
    if weight < 0 or weight > MAX_WEIGHT:
        return None
    if isinstance(weight, int):
        return weight * PPM
    # Fast path: the float product is within ~1e-4 of the exact decimal product here, so when it
    # is not near a .5 tie, plain rounding gives the same integer as the Decimal route.
    scaled = weight * PPM
    nearest = round(scaled)
    if abs(scaled - nearest) < 0.25:
        return int(nearest)
    exact = (Decimal(repr(weight)) * PPM).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return int(exact)


def storable(value: str) -> bool:
    """Text a database can hold and compare: PostgreSQL refuses NUL, lone surrogates are not
    UTF-8. Ids failing this are never sent to the database (they are invalid or unknown)."""
    if "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def quick_weights(
    event: EventLike,
    models: dict[str, bool],
    owners: dict[str, str],
    latest: datetime,
    max_attributions: int,
) -> tuple[list[int], datetime] | None:
    """The weights in ppm and the time in UTC if the event is valid, else None (then
    `validate` says why).

    The common case on the hot path: same rules as `validate`, without building reasons.
    `models` holds only the operator's own models, `owners` only accepted contributions, so
    one dict lookup settles existence, ownership and state.
    """
    eid = event.event_id
    if not 0 < len(eid) <= MAX_EVENT_ID_LENGTH or not (eid.isascii() or storable(eid)):
        return None
    if "\x00" in eid or event.model_id not in models:
        return None
    at = event.at
    if at.tzinfo is None or not 0 <= event.fee_micro <= MAX_FEE_MICRO:
        return None
    try:
        at = at.astimezone(UTC)
    except OverflowError:
        return None
    if at > latest:
        return None
    attrs = event.attributions
    if not attrs or len(attrs) > max_attributions:
        return None
    weights: list[int] = []
    for attr in attrs:
        if attr.contribution_id not in owners or attr.method not in _METHOD_SET:
            return None
        w = attr.weight
        ppm: int | None
        # Inline fast path of weight_to_ppm for the usual float far from a rounding tie
        # (NaN fails the range test and takes the slow path, which rejects it).
        if type(w) is float and 0.0 <= w <= MAX_WEIGHT:
            scaled = w * PPM
            nearest = round(scaled)
            ppm = nearest if abs(scaled - nearest) < 0.25 else weight_to_ppm(w)
        else:
            ppm = weight_to_ppm(w)
        if ppm is None:
            return None
        weights.append(ppm)
    if len(attrs) > 1 and len({(a.contribution_id, a.method) for a in attrs}) != len(attrs):
        return None
    if not any(weights):
        return None
    return weights, at


def validate(
    event: EventLike,
    *,
    operator: str,
    operator_keys: frozenset[str],
    models: dict[str, tuple[str, bool]],
    contributions: dict[str, Owner],
    now: datetime,
    max_attributions: int,
) -> tuple[list[Reason], list[int]]:
    """Every problem of one event (not just the first), and its weights in ppm."""
    reasons: list[Reason] = []
    eid = event.event_id
    if not eid or len(eid) > MAX_EVENT_ID_LENGTH or not storable(eid):
        reasons.append(
            Reason(
                "invalid_event_id",
                f"eventId must be 1 to {MAX_EVENT_ID_LENGTH} characters of text without NUL.",
                "eventId",
            )
        )
    model = models.get(event.model_id)
    if model is None:
        reasons.append(
            Reason("unknown_model", f"Model {event.model_id!r} is not registered.", "modelId")
        )
    elif model[0] != operator:
        reasons.append(
            Reason(
                "model_not_yours",
                f"Model {event.model_id!r} belongs to another operator.",
                "modelId",
            )
        )
    if event.at.tzinfo is None:
        reasons.append(Reason("invalid_time", "'at' needs a timezone (e.g. a trailing Z).", "at"))
    else:
        try:
            in_future = event.at.astimezone(UTC) > now + FUTURE_SKEW
        except OverflowError:  # e.g. 0001-01-01T00:00+05:00 is before year 1 in UTC
            reasons.append(Reason("invalid_time", "'at' is out of range.", "at"))
        else:
            if in_future:
                reasons.append(Reason("time_in_future", "'at' is in the future.", "at"))
    if event.fee_micro < 0:
        reasons.append(Reason("negative_fee", "feeMicro must be zero or more.", "feeMicro"))
    elif event.fee_micro > MAX_FEE_MICRO:
        reasons.append(
            Reason("fee_too_large", f"feeMicro must be at most {MAX_FEE_MICRO}.", "feeMicro")
        )
    if not event.attributions:
        reasons.append(
            Reason("no_attributions", "An event needs at least one attribution.", "attributions")
        )
    elif len(event.attributions) > max_attributions:
        reasons.append(
            Reason(
                "too_many_attributions",
                f"At most {max_attributions} attributions per event.",
                "attributions",
            )
        )
    weights: list[int] = []
    bad_weight = False
    seen: set[tuple[str, str]] = set()
    for i, attr in enumerate(event.attributions):
        at = f"attributions[{i}]"
        ppm = weight_to_ppm(attr.weight)
        if ppm is None:
            w = attr.weight
            if isinstance(w, bool) or (isinstance(w, float) and not math.isfinite(w)):
                reasons.append(
                    Reason("invalid_weight", "The weight is not a number.", f"{at}.weight")
                )
            elif w < 0:
                reasons.append(Reason("negative_weight", "The weight is negative.", f"{at}.weight"))
            else:
                reasons.append(
                    Reason("weight_too_large", f"The weight is above {MAX_WEIGHT}.", f"{at}.weight")
                )
            ppm = 0
            bad_weight = True
        weights.append(ppm)
        if attr.method not in METHODS:
            reasons.append(
                Reason(
                    "unknown_method",
                    f"The method must be one of {', '.join(METHODS)}.",
                    f"{at}.method",
                )
            )
        if (attr.contribution_id, attr.method) in seen:
            reasons.append(
                Reason(
                    "duplicate_attribution",
                    f"Contribution {attr.contribution_id!r} is attributed twice with method "
                    f"{attr.method!r}.",
                    at,
                )
            )
        seen.add((attr.contribution_id, attr.method))
        owner = contributions.get(attr.contribution_id)
        if owner is None:
            reasons.append(
                Reason(
                    "unknown_contribution",
                    f"Contribution {attr.contribution_id!r} does not exist.",
                    f"{at}.contributionId",
                )
            )
        elif owner.state != STATE_ACCEPTED:
            reasons.append(
                Reason(
                    "contribution_not_accepted",
                    f"Contribution {attr.contribution_id!r} is {owner.state}, not accepted.",
                    f"{at}.contributionId",
                )
            )
        elif owner.owner in operator_keys:
            reasons.append(
                Reason(
                    "self_attribution",
                    f"Contribution {attr.contribution_id!r} is your own: an operator cannot "
                    "attribute usage to contributions of its own key.",
                    f"{at}.contributionId",
                )
            )
    if event.attributions and not bad_weight and sum(weights) == 0:
        reasons.append(
            Reason("weights_all_zero", "At least one weight must be above zero.", "attributions")
        )
    return reasons, weights


def room_reason(fees: int, fee: int) -> Reason:
    if fees + fee > MAX_BATCH_FEE_MICRO:
        return Reason(
            "batch_fees_too_large",
            f"The accepted fees of one batch add up to at most {MAX_BATCH_FEE_MICRO} "
            "micro-units; send this event in another batch.",
            "feeMicro",
        )
    return Reason(
        "ledger_full",
        f"The ledger holds at most {MAX_LEDGER_TOTAL_MICRO} micro-units in total; "
        "this registry accepts no more fees.",
        "feeMicro",
    )


def overfilled(
    event: EventLike,
    day: Any,
    amounts: list[int],
    stored: dict[tuple[Any, ...], tuple[int, int]],
    pending: dict[tuple[Any, ...], list[int]],
) -> Reason | None:
    """Why the event would push one of its day buckets over a limit (stored + this batch so
    far + the event), or None."""
    for i, (attr, amount) in enumerate(zip(event.attributions, amounts, strict=True)):
        key = (attr.contribution_id, day, event.model_id, attr.method)
        n, reward = stored.get(key, (0, 0))
        mine = pending.get(key)
        if mine is not None:
            n, reward = n + mine[0], reward + mine[2]
        if n + 1 > MAX_BUCKET_EVENTS or reward + amount > MAX_BUCKET_REWARD_MICRO:
            return Reason(
                "bucket_full",
                f"Contribution {attr.contribution_id!r} reached the limit of one day bucket "
                f"({MAX_BUCKET_EVENTS} events or {MAX_BUCKET_REWARD_MICRO} micro-units per "
                "day, model and method).",
                f"attributions[{i}]",
            )
    return None
