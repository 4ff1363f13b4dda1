"""Joining the chunks of live messages, in bounded memory.

Partial messages are keyed by ``(src, id)`` and held until their last chunk arrives.
Three bounds keep a hostile or broken sender from exhausting memory (sizes are the
messages' declared sizes, which their buffers never exceed):

* a message may declare at most ``max_message_bytes``;
* the partial messages claiming one source hold at most ``per_source_bytes``, all of
  them at most ``total_bytes``; a new message beyond either is refused;
* a partial message that received nothing for ``idle_s`` seconds is evicted (before any
  other bound is checked, so stale claims never crowd out live messages).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass

from simnet.live.wire import BadFrame, Header


@dataclass
class _Partial:
    first: Header
    data: bytearray
    seen: float
    """When its latest chunk arrived, seconds."""


class Reassembly:
    """Bounded reassembly of chunked messages (see the module doc)."""

    def __init__(
        self, max_message_bytes: int, per_source_bytes: int, total_bytes: int, idle_s: float
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.per_source_bytes = per_source_bytes
        self.total_bytes = total_bytes
        self.idle_s = idle_s
        self.buffered = 0
        """Declared bytes of the partial messages held."""
        self.by_source: Counter[str] = Counter()
        self.evicted = 0
        """Partial messages evicted for idleness so far."""
        self._partial: OrderedDict[tuple[str, int], _Partial] = OrderedDict()
        """In order of their latest chunk (oldest first)."""

    def __len__(self) -> int:
        return len(self._partial)

    def add(self, header: Header, data: bytes, now: float) -> bytes | None:
        """Take one data chunk at time ``now`` (seconds); the whole message's data once it
        is complete, else ``None``. :class:`BadFrame` (the state unchanged but for idle
        evictions) for a chunk out of order, a duplicate, one disagreeing with its
        message's first chunk, or one beyond a bound."""
        self.evict(now)
        if header.type != "data":
            raise BadFrame("type")
        if header.bytes > self.max_message_bytes:
            raise BadFrame("too large")
        if header.offset + len(data) > header.bytes:
            raise BadFrame("offset")
        key = (header.src, header.id)
        entry = self._partial.get(key)
        if entry is None:
            if header.offset != 0:
                raise BadFrame("order")
            if len(data) == header.bytes:
                return data
            if self.by_source[header.src] + header.bytes > self.per_source_bytes:
                raise BadFrame("source buffer full")
            if self.buffered + header.bytes > self.total_bytes:
                raise BadFrame("buffer full")
            self._hold(key, _Partial(header, bytearray(data), now))
            return None
        first = entry.first
        if (header.dst, header.kind, header.bytes, header.reply_to, header.t_send) != (
            first.dst, first.kind, first.bytes, first.reply_to, first.t_send,
        ):  # fmt: skip
            raise BadFrame("chunk mismatch")
        if header.offset != len(entry.data):
            raise BadFrame("order")
        entry.data += data
        entry.seen = now
        self._partial.move_to_end(key)
        if len(entry.data) < first.bytes:
            return None
        self._release(key)
        return bytes(entry.data)

    def drop(self, src: str, id: int) -> None:
        """Forget the partial message ``(src, id)``, if held (its flow was dropped)."""
        if (src, id) in self._partial:
            self._release((src, id))

    def evict(self, now: float) -> None:
        """Evict the partial messages idle for more than ``idle_s`` at ``now``."""
        while self._partial:
            key, entry = next(iter(self._partial.items()))
            if now - entry.seen <= self.idle_s:
                return
            self._release(key)
            self.evicted += 1

    def _hold(self, key: tuple[str, int], entry: _Partial) -> None:
        self._partial[key] = entry
        self.buffered += entry.first.bytes
        self.by_source[key[0]] += entry.first.bytes

    def _release(self, key: tuple[str, int]) -> None:
        entry = self._partial.pop(key)
        self.buffered -= entry.first.bytes
        self.by_source[key[0]] -= entry.first.bytes
        if not self.by_source[key[0]]:
            del self.by_source[key[0]]
