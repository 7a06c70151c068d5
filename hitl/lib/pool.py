"""When several approvers' decisions resolve a request (SPEC §13): pure, so every channel, the sweeper
and the tests agree on one reading of `any`, `all`, `quorum` and the veto.

A decision is counted by its key: the outcome in emit and approval mode, the chosen option ids in
choices mode, and one shared key in text mode (any answer agrees with any other).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Counted:
    """One decision as the policy sees it: its key and its approver, in the order they were made."""

    key: str
    approver: str


@dataclass(frozen=True)
class Verdict:
    """The policy is met: resolve with the decisions of `key`; `why` is `policy`, `veto` or
    `unreachable` (no key could reach its count any more: the one with most decisions, ties the
    earliest)."""

    key: str
    why: str


def threshold(policy: str, required: int | None, pool_size: int) -> int:
    if policy == "any":
        return 1
    if policy == "quorum":
        return max(1, min(required or 1, pool_size))
    return pool_size  # all


def evaluate(
    decisions: Sequence[Counted],
    *,
    policy: str,
    required: int | None,
    pool_size: int,
    mode: str,
    veto: bool,
) -> Verdict | None:
    """The verdict after `decisions` (oldest first) from a pool of `pool_size` active seats, or None
    while the request must wait for more decisions."""
    if not decisions:
        return None
    if veto and mode == "approval" and policy != "any" and any(d.key == "rejected" for d in decisions):
        return Verdict("rejected", "veto")
    need = threshold(policy, required, pool_size)
    counts: dict[str, int] = {}
    first_seen: dict[str, int] = {}
    for index, decision in enumerate(decisions):
        counts[decision.key] = counts.get(decision.key, 0) + 1
        first_seen.setdefault(decision.key, index)
        if counts[decision.key] >= need:
            return Verdict(decision.key, "policy")  # the first key to reach its count wins
    left = max(pool_size - len(decisions), 0)
    # An outcome nobody chose yet could still be reached by those left, as could any counted one.
    reachable = left >= need or any(count + left >= need for count in counts.values())
    if reachable:
        return None
    best = max(counts, key=lambda key: (counts[key], -first_seen[key]))
    return Verdict(best, "unreachable")
