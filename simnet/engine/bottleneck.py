"""Flows that all cross one shared hop, kept in virtual time: O(log n) work per start or end.

When every active flow crosses hop ``B`` (capacity ``C``, bytes/s) on its route, and no
other hop two of them cross can saturate, the sharing allocation has one level ``t``:

    x_f = min(l_f, t / p_f),     Σ_f x_f = C   (t = ∞ if Σ_f l_f ≤ C)

with ``p_f`` the flow's sharing penalty (1 under ``maxmin``) and ``l_f`` its limit: its
bound and ``C_h / a_fh`` of every other hop of its entries. That is what
:func:`~simnet.engine.maxmin.weighted_max_min` and :func:`~simnet.engine.maxmin.max_min_rates`
give for such a set: a constraint that cannot bind changes nothing, and adding it to the
limit of a flow crossing that hop changes nothing either. A flow is *capped* when
``l_f · p_f < t``, else *free*.

A free flow receives ``dV / p_f`` bytes as the virtual service ``V = ∫ t dt`` grows, so it
ends when ``V`` reaches its *target* ``V_now + p_f · R_f`` (``R_f`` bytes left), whatever
``t`` does meanwhile; a capped flow ends at the real time ``τ + R_f / l_f``. Both kinds sit in
heaps by those keys, and the free/capped split in heaps by ``l_f · p_f``, so a start or end
moves only the flows whose side of ``t`` changes. The level is found from the sums
``S = Σ_capped l_f`` and ``W = Σ_free 1 / p_f``: ``t = (C − S) / W``.

A hop other than ``B`` crossed by several flows *cannot saturate* when the flows' one-flow
rates ``s_f`` (each at most its rate in any allocation) load it below capacity,
``Σ a_fh · s_f < C_h``, or when ``max a_fh · C < C_h`` (the flows on it carry at most ``C``
together), each with a margin of :data:`MARGIN`.

Why by hand: no maintained library keeps a max-min allocation incrementally.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from simnet.engine.maxmin import REL_TOL
from simnet.engine.sharing import CROSSTRAFFIC_WEIGHT

if TYPE_CHECKING:
    from simnet.engine.network import Route, Transfer

MARGIN = 1e-6
"""Relative room a shared hop other than the bottleneck keeps to count as unable to saturate."""


class _Sum:
    """A float sum kept with Neumaier's compensation: terms added and taken away many
    times leave an error of about one rounding of its value (plus ``n · ε²`` of the
    terms' total), not one rounding per term."""

    __slots__ = ("total", "error")

    def __init__(self) -> None:
        self.total = self.error = 0.0

    def add(self, x: float) -> None:
        total = self.total + x
        if abs(self.total) >= abs(x):
            self.error += (self.total - total) + x
        else:
            self.error += (x - total) + self.total
        self.total = total

    @property
    def value(self) -> float:
        return self.total + self.error


class _Member:
    """One flow of the group: its penalty, limit (bytes/s), ``level = limit · penalty``,
    side (capped or free) and, free, its ``target`` service or, capped, the bytes ``left``
    at time ``since``; ``side_entry`` and ``end_entry`` are its live heap entries."""

    __slots__ = (
        "transfer", "penalty", "limit", "level", "floor", "capped", "target", "left", "since",
        "side_entry", "end_entry",
    )  # fmt: skip

    def __init__(self, transfer: Transfer, penalty: float, limit: float) -> None:
        self.transfer, self.penalty, self.limit = transfer, penalty, limit
        self.level = limit * penalty
        self.floor = max(1.0, transfer.size)
        self.capped = False
        self.target = self.left = self.since = 0.0
        self.side_entry: tuple | None = None
        self.end_entry: tuple | None = None


class SharedBottleneck:
    """The active flows of a network that all cross hop ``hop`` (see the module text).

    ``capacity`` lists every hop's capacity (bytes/s) by hop id; unless ``weighted``
    (``maxmin``), every penalty counts as 1. Times are virtual seconds;
    :meth:`advance` must bring the group to the clock's time before anything else is
    asked of it at that time.
    """

    def __init__(self, hop: int, capacity: list[float], weighted: bool) -> None:
        self.hop = hop
        self._weighted = weighted
        self._capacity = capacity
        self._c = float(capacity[hop])
        self._members: dict[int, _Member] = {}  # by transfer id, in join order
        self._hops: dict[int, list] = {}  # hop id -> [flows, flows on their route, Σ a·s]
        self._capped, self._free = _Sum(), _Sum()  # S = Σ_capped l_f, W = Σ_free 1/p_f
        self._free_side: list[tuple] = []  # (level, seq, member): capped next, lowest first
        self._capped_side: list[tuple] = []  # (−level, seq, member): freed next
        self._free_end: list[tuple] = []  # (target, seq, member)
        self._capped_end: list[tuple] = []  # (end time, seq, member)
        self._seq = self._n_free = self._n_capped = 0
        self.level = math.inf
        self._service = 0.0  # V, bytes · penalty per free flow
        self._now = 0.0
        self._plan = (0.0, 0.0, math.inf, 0.0)  # service, time, level, due window

    def __len__(self) -> int:
        return len(self._members)

    # ------------------------------------------------------------------ joining, leaving
    def add(self, transfer: Transfer, remaining: float) -> bool:
        """Take in ``transfer`` with ``remaining`` bytes to send, free at first (call
        :meth:`settle_level` after the last one of an instant). ``False`` (and nothing
        changed) if it does not cross the bottleneck on its route, or would let a hop it
        shares with the group saturate."""
        route = transfer.route
        limit, solo, here = route.bound, route.solo_rate, 0
        capacity, states, bottleneck = self._capacity, self._hops, self.hop
        entries = list(zip(route.entry_hops, route.entry_weight, strict=True))
        for hop, weight in entries:
            if hop == bottleneck:
                here += 1 if weight == 1.0 else 2
                continue
            limit = min(limit, capacity[hop] / weight)
            state = states.get(hop)
            if state is not None and not self._cannot_saturate(
                hop, state[1] + (weight == 1.0), state[2] + weight * solo
            ):
                return False
        if here != 1:
            return False
        self._count(route, 1)
        member = _Member(transfer, route.penalty if self._weighted else 1.0, limit)
        self._members[transfer.id] = member
        self._set_free(member, remaining)
        return True

    def _count(self, route: Route, sign: int) -> None:
        """Add (``sign`` 1) or take away (−1) a flow on ``route`` in the per-hop counts of
        the hops other than the bottleneck: flows, flows on their route, one-flow load."""
        for hop, weight in zip(route.entry_hops, route.entry_weight, strict=True):
            if hop == self.hop:
                continue
            state = self._hops.setdefault(hop, [0, 0, 0.0])
            state[0] += sign
            state[1] += sign * (weight == 1.0)
            state[2] += sign * weight * route.solo_rate
            if not state[0]:
                del self._hops[hop]

    def _cannot_saturate(self, hop: int, forward: int, load: float) -> bool:
        """Whether hop ``hop`` (not the bottleneck) stays below capacity with these
        flows on it: ``forward`` crossing it on their route, their one-flow load ``load``."""
        room = self._capacity[hop] * (1 - MARGIN)
        most = 1.0 if forward else CROSSTRAFFIC_WEIGHT
        return load <= room or most * self._c <= room

    def remove(self, transfer: Transfer) -> float:
        """Take ``transfer`` out; returns the bytes it had left (call :meth:`settle_level`
        after the last one of an instant)."""
        member = self._members.pop(transfer.id)
        left = self._left(member)
        if member.capped:
            self._capped.add(-member.limit)
            self._n_capped -= 1
        else:
            self._free.add(-1.0 / member.penalty)
            self._n_free -= 1
        member.side_entry = member.end_entry = None
        self._count(transfer.route, -1)
        if not self._members:
            self._reset()
        return left

    def _reset(self) -> None:
        """Empty: start the sums, heaps and service afresh."""
        self._hops.clear()
        self._capped, self._free = _Sum(), _Sum()
        self._n_free = self._n_capped = 0
        for heap in (self._free_side, self._capped_side, self._free_end, self._capped_end):
            heap.clear()
        self._service, self.level = 0.0, math.inf

    def flows(self) -> Iterator[tuple[Transfer, float]]:
        """Each flow with the bytes it has left, in the order they joined."""
        for member in self._members.values():
            yield member.transfer, self._left(member)

    # ------------------------------------------------------------------ time
    def advance(self, now: float) -> None:
        """Move the group forward to ``now`` at the current level."""
        if now > self._now and self._n_free:
            self._service += self.level * (now - self._now)
        self._now = now

    def _left(self, member: _Member) -> float:
        """Bytes ``member`` has left now."""
        if member.capped:
            left = member.left - member.limit * (self._now - member.since)
        else:
            left = (member.target - self._service) / member.penalty
        return max(0.0, left)

    def settle_level(self) -> None:
        """Find the level ``t`` of the flows now in the group, moving the flows whose side
        of it changed: first the capped flows above it are freed, then the free flows
        below it are capped. Either move raises ``t`` (the level of a wrong split is below
        the true one), so a flow freed too early is capped again in the second pass, and
        each pass moves flows one way only: it ends whatever the float rounding."""
        t = self._level()
        while (high := _top(self._capped_side)) is not None and high.level > t:
            self._set_free(high, self._left(high))
            t = self._level()
        while (low := _top(self._free_side)) is not None and low.level < t:
            self._set_capped(low)
            t = self._level()
        self.level = t

    def _level(self) -> float:
        """``t = (C − S) / W`` for the split as it is (``±∞`` with no free flow: whether
        the capped ones fit)."""
        capped = self._capped.value if self._n_capped else 0.0
        if self._n_free:
            return (self._c - capped) / self._free.value
        return math.inf if capped <= self._c else -math.inf

    def _push(self, heap: list[tuple], key: float, member: _Member, side: bool) -> None:
        """Put ``member`` in ``heap`` under ``key`` as its live side (or end) entry."""
        self._seq += 1
        entry = (key, self._seq, member)
        if side:
            member.side_entry = entry
        else:
            member.end_entry = entry
        heapq.heappush(heap, entry)
        if len(heap) > 64 and len(heap) > 3 * len(self._members):  # drop stale entries
            heap[:] = [e for e in heap if _live(e)]
            heapq.heapify(heap)

    def _set_free(self, member: _Member, left: float) -> None:
        if member.capped:
            self._capped.add(-member.limit)
            self._n_capped -= 1
        member.capped = False
        self._free.add(1.0 / member.penalty)
        self._n_free += 1
        member.target = self._service + left * member.penalty
        self._push(self._free_side, member.level, member, side=True)
        self._push(self._free_end, member.target, member, side=False)

    def _set_capped(self, member: _Member) -> None:
        member.left = self._left(member)
        self._free.add(-1.0 / member.penalty)
        member.capped, member.since = True, self._now
        self._capped.add(member.limit)
        self._n_capped += 1
        self._n_free -= 1
        self._push(self._capped_side, -member.level, member, side=True)
        self._push(self._capped_end, self._now + member.left / member.limit, member, side=False)

    # ------------------------------------------------------------------ completions
    def next_delay(self) -> float:
        """Seconds from now to the next completion (``inf`` if none), remembered for
        :meth:`due`: flows ending within ``REL_TOL`` of it are due together."""
        delay = math.inf
        free = _top(self._free_end)
        if free is not None:
            delay = (free.target - self._service) / self.level
        capped = _top(self._capped_end)
        if capped is not None:
            delay = min(delay, capped.end_entry[0] - self._now)
        self._plan = (self._service, self._now, self.level, delay * (1 + REL_TOL))
        return delay

    def due(self) -> list[Transfer]:
        """Take out and return the flows the planned wake-up (:meth:`next_delay`) is for,
        and any within ``REL_TOL`` of their size, whatever rounding left of them (call
        :meth:`settle_level` afterwards)."""
        service, then, level, window = self._plan
        out = []
        while (member := _top(self._free_end)) is not None and (
            (member.target - service) / level <= window
            or self._left(member) <= REL_TOL * member.floor
        ):
            out.append(member.transfer)
            self.remove(member.transfer)
        while (member := _top(self._capped_end)) is not None and (
            member.end_entry[0] - then <= window or self._left(member) <= REL_TOL * member.floor
        ):
            out.append(member.transfer)
            self.remove(member.transfer)
        return out


def _top(heap: list[tuple]) -> _Member | None:
    """The member at the top of ``heap`` whose entry is live (stale ones are dropped)."""
    while heap:
        if _live(heap[0]):
            return heap[0][2]
        heapq.heappop(heap)
    return None


def _live(entry: tuple) -> bool:
    """Whether a heap entry is its member's current one."""
    member = entry[2]
    return member.side_entry is entry or member.end_entry is entry
