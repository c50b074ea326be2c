"""What makes a usage event valid, and the limits of usage and money (docs/protocol.md,
"Usage ingestion" and "Limits of usage and money").

`quick_weights` is the hot path of ingestion (one event at a time, no reasons built);
`validate` lists every reason of an event the quick path refused; the two must agree.
`room_reason` and `overfilled` name the money limit an otherwise valid event would cross.
`evidence_ok` / `evidence_reason` check an attribution's evidence (docs/protocol.md, "Usage
evidence") against the files of its contribution; `evidence_json` is its stored form.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Protocol

from app.domain.rewards import PPM
from registry.db.models import STATE_ACCEPTED
from registry.db.usage_models import METHOD_EXACT_MATCH, METHOD_RETRIEVAL, METHODS

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
# Evidence (docs/protocol.md, "Usage evidence").
MAX_EVIDENCE_LENGTH = 1_048_576  # bytes of one span
MAX_EVIDENCE_OFFSET = 2**63 - 1  # no file is larger (sizes are BIGINT)
MAX_EXCERPT_CHARS = 280
_HEX64 = re.compile(r"[0-9a-f]{64}")
_SPAN_KEYS = ("offset", "length", "spanSha256")
# The key sets valid evidence can have, per method (for the quick check).
_FILE_ONLY = frozenset(("fileSha256",))
_WITH_SPAN = frozenset(("fileSha256", *_SPAN_KEYS))
_WITH_EXCERPT = _WITH_SPAN | {"excerpt"}
_EVIDENCE_KEYS = {
    METHOD_EXACT_MATCH: frozenset(("fileSha256", *_SPAN_KEYS, "excerpt")),
    METHOD_RETRIEVAL: frozenset(("fileSha256", *_SPAN_KEYS)),
}
# A contribution's files as intake sees them: sha256 -> size.
FileSizes = Mapping[str, int]


class AttributionLike(Protocol):
    """What ingestion reads of one attribution: an `AttributionIn`, or the HTTP body's model as
    it is (no copy per event on the request path)."""

    @property
    def contribution_id(self) -> str: ...
    @property
    def weight(self) -> float | int: ...
    @property
    def method(self) -> str: ...
    @property
    def evidence(self) -> Any: ...


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


def _evidence_shape(evidence: Any, method: str) -> tuple[str, str] | None:
    """(path below the evidence, message) of the first thing wrong with the evidence itself,
    or None. Evidence of an unknown method is not judged (the method is its own reason)."""
    allowed = _EVIDENCE_KEYS.get(method)
    if allowed is None:
        if method in _METHOD_SET:
            return "", "influence attributions carry no evidence (they are operator-asserted)."
        return None
    if type(evidence) is not dict:
        return "", "evidence must be a JSON object."
    for key in evidence:
        if key not in allowed:
            return "", f"{key!r} is not a field of {method} evidence."
    sha = evidence.get("fileSha256")
    if type(sha) is not str or not _HEX64.fullmatch(sha):
        return ".fileSha256", "fileSha256 must be the file's SHA-256 in 64 lowercase hex digits."
    given = [k for k in _SPAN_KEYS if k in evidence]
    if method == METHOD_EXACT_MATCH and len(given) != len(_SPAN_KEYS):
        missing = next(k for k in _SPAN_KEYS if k not in evidence)
        return f".{missing}", f"exact-match evidence needs {missing}."
    if given and len(given) != len(_SPAN_KEYS):
        return "", "retrieval evidence gives offset, length and spanSha256 together, or none."
    if given:
        offset, length, span = evidence["offset"], evidence["length"], evidence["spanSha256"]
        if type(offset) is not int or not 0 <= offset <= MAX_EVIDENCE_OFFSET:
            return ".offset", "offset must be an integer byte offset, 0 or more."
        if type(length) is not int or not 1 <= length <= MAX_EVIDENCE_LENGTH:
            return ".length", f"length must be an integer from 1 to {MAX_EVIDENCE_LENGTH}."
        if type(span) is not str or not _HEX64.fullmatch(span):
            return ".spanSha256", "spanSha256 must be 64 lowercase hex digits."
    if "excerpt" in evidence:
        excerpt = evidence["excerpt"]
        if type(excerpt) is not str or len(excerpt) > MAX_EXCERPT_CHARS or not storable(excerpt):
            return ".excerpt", f"excerpt must be text of at most {MAX_EXCERPT_CHARS} characters."
    return None


def _evidence_against_files(evidence: dict[str, Any], files: FileSizes) -> Reason | None:
    """Why well-formed evidence does not fit its contribution's files (path relative to the
    evidence), or None."""
    size = files.get(evidence["fileSha256"])
    if size is None:
        return Reason(
            "evidence_file_not_in_contribution",
            "fileSha256 names no file of the contribution's manifest.",
            ".fileSha256",
        )
    if "offset" in evidence and evidence["offset"] + evidence["length"] > size:
        return Reason(
            "evidence_span_out_of_range",
            f"offset + length is past the end of the file ({size} bytes).",
            ".length",
        )
    return None


def evidence_ok(evidence: Any, method: str, files: FileSizes | None) -> bool:
    """The quick check (same rules as `evidence_reason`, no reasons built): the evidence is
    well-formed and fits `files`, the contribution's files, whose keys are all valid SHA-256
    hex (see `hex_files`), so finding fileSha256 among them also checks its form."""
    if files is None or type(evidence) is not dict:
        return False
    keys = evidence.keys()
    if method == METHOD_EXACT_MATCH:
        if keys != _WITH_SPAN and keys != _WITH_EXCERPT:
            return False
    elif method != METHOD_RETRIEVAL or (keys != _FILE_ONLY and keys != _WITH_SPAN):
        return False
    sha = evidence["fileSha256"]
    size = files.get(sha) if type(sha) is str else None
    if size is None:
        return False
    if len(keys) > 1:
        offset, length, span = evidence["offset"], evidence["length"], evidence["spanSha256"]
        if type(offset) is not int or type(length) is not int or type(span) is not str:
            return False
        if offset < 0 or not 1 <= length <= MAX_EVIDENCE_LENGTH or offset + length > size:
            return False
        if not _HEX64.fullmatch(span):
            return False
        if "excerpt" in evidence:
            excerpt = evidence["excerpt"]
            return type(excerpt) is str and len(excerpt) <= MAX_EXCERPT_CHARS and storable(excerpt)
    return True


def hex_files(rows: Any) -> dict[str, int]:
    """sha256 -> size of a contribution's file rows [(sha256, size)], without any digest that
    is not 64 lowercase hex digits (no valid evidence can name one)."""
    return {sha: int(size) for sha, size in rows if type(sha) is str and _HEX64.fullmatch(sha)}


def evidence_reason(
    evidence: Any, method: str, files: FileSizes | None, path: str
) -> Reason | None:
    """Why the evidence of the attribution at `path` is refused, or None. `files` None: the
    contribution is not one intake can attribute to (reported apart); only the form is judged."""
    shape = _evidence_shape(evidence, method)
    if shape is not None:
        return Reason("invalid_evidence", shape[1], f"{path}.evidence{shape[0]}")
    if files is None or method not in _EVIDENCE_KEYS:
        return None
    found = _evidence_against_files(evidence, files)
    if found is None:
        return None
    return Reason(found.code, found.message, f"{path}.evidence{found.path}")


def evidence_json(evidence: dict[str, Any]) -> str:
    """The stored form of valid evidence: JSON, keys sorted, no spaces, ASCII (what
    `json.dumps(evidence, sort_keys=True, separators=(",", ":"))` gives, written directly:
    every value but the excerpt is digits or hex)."""
    text = f'"fileSha256":"{evidence["fileSha256"]}"'
    if "excerpt" in evidence:
        text = f'"excerpt":{json.dumps(evidence["excerpt"])},{text}'
    if "offset" in evidence:
        text += (
            f',"length":{evidence["length"]},"offset":{evidence["offset"]},'
            f'"spanSha256":"{evidence["spanSha256"]}"'
        )
    return "{" + text + "}"


def quick_weights(
    event: EventLike,
    models: dict[str, bool],
    owners: dict[str, str],
    latest: datetime,
    max_attributions: int,
    files: Mapping[str, FileSizes] | None = None,
) -> tuple[list[int], datetime] | None:
    """The weights in ppm and the time in UTC if the event is valid, else None (then
    `validate` says why).

    The common case on the hot path: same rules as `validate`, without building reasons.
    `models` holds only the operator's own models, `owners` only accepted contributions, so
    one dict lookup settles existence, ownership and state. `files` holds the files of
    the contributions attributed with evidence.
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
        if attr.evidence is not None and not evidence_ok(
            attr.evidence, attr.method, (files or {}).get(attr.contribution_id)
        ):
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
    files: Mapping[str, FileSizes] | None = None,
) -> tuple[list[Reason], list[int]]:
    """Every problem of one event (not just the first), and its weights in ppm. `files`: the
    files of the contributions attributed with evidence (see `quick_weights`)."""
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
        if attr.evidence is not None:
            # Files are known only of contributions the event may attribute to.
            known = (files or {}).get(attr.contribution_id)
            bad = evidence_reason(attr.evidence, attr.method, known, at)
            if bad is not None:
                reasons.append(bad)
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
