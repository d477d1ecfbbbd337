"""Fold RUM events into per-series event-time buckets, a whole batch at a time.

This is the pure heart of the hot path: the ingest stage hands over columns
(series key, event time, status, duration) of a validated batch from one
source partition, and :class:`BucketFolder` adds them to open buckets with a
handful of numpy calls, whatever the batch size. Latencies go straight into a
dense matrix of log-sketch bins (one row per open bucket), so the sketch costs
one ``bincount`` per batch instead of a dict update per event.

Buckets close by event time: once the watermark of the partitions feeding the
folder passes ``bucket end + allowed lateness``. An event for a bucket that has
already closed is *late*: it is counted in the series' next summary
(``late``) and in :attr:`BucketFolder.late_total`, never dropped silently.
When a bucket period closes, every series seen in the last ``series_ttl_s``
gets a summary, with ``count == 0`` if it had no traffic: an endpoint that
goes silent is a signal too, and quiet series still need ticks to resolve.

The folder also tells the ingest stage how far each source partition may be
committed: up to the first offset still held in an open bucket
(:meth:`BucketFolder.committable`), so a crash replays everything that had not
reached the buckets topic yet.

>>> f = BucketFolder(bucket_s=10, allowed_lateness_s=0)
>>> keys = ["rum|production|shop|GET|/a"] * 3
>>> f.fold(0, keys, np.array([1_000, 2_000, 12_000]), np.array([200, 503, 200]),
...        np.array([10.0, 20.0, 30.0]), first_offset=0)
>>> [(s.start_ms, s.count, s.errors_5xx) for s in f.close_ready()]
[(0, 2, 1)]
>>> f.committable()
{0: 2}
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from apiwatch.models.buckets import SERIES_SEP, BucketSummary
from apiwatch.models.sketch import DEFAULT_ALPHA, ZERO_BIN, gamma_of

# Dense bin range: 1 µs .. ~116 days in ms at alpha = 1 %; values outside are clamped.
_MIN_MS = 1e-3
_MAX_MS = 1e10

IdFn = Callable[[int], str]


@dataclass(slots=True)
class _Slot:
    series: int
    bucket: int  # bucket index = start_ms // width_ms
    row: int
    count: int = 0
    errors_5xx: int = 0
    errors_4xx: int = 0
    total_us: float = 0.0  # integer-valued microseconds: sums that do not depend on batch splits
    max_ms: float = 0.0
    samples: list[str] = field(default_factory=list)
    min_offsets: dict[int, int] = field(default_factory=dict)


def _labels_of(series: str) -> dict[str, str]:
    _, env, service, method, route = series.split(SERIES_SEP, 4)
    return {"environment": env, "service": service, "method": method, "route": route}


class BucketFolder:
    """Open event-time buckets for many RUM series, folded batch by batch.

    Parameters
    ----------
    bucket_s
        Bucket width in seconds.
    allowed_lateness_s
        How long after its end (in event time) a bucket stays open.
    alpha
        Relative accuracy of the latency sketches.
    samples_per_bucket
        Event ids kept per bucket as evidence.
    series_ttl_s
        A series that saw no event for this long stops getting empty summaries.
    """

    def __init__(
        self,
        bucket_s: float,
        allowed_lateness_s: float,
        alpha: float = DEFAULT_ALPHA,
        samples_per_bucket: int = 5,
        series_ttl_s: float = 3600.0,
        origin: str = "",
    ) -> None:
        self.width_ms = int(bucket_s * 1000)
        if self.width_ms <= 0:
            raise ValueError("bucket_s must be positive")
        self.lateness_ms = int(allowed_lateness_s * 1000)
        self.alpha = alpha
        self.samples_per_bucket = samples_per_bucket
        self.series_ttl_ms = int(series_ttl_s * 1000)
        self.origin = origin
        self._log_gamma = math.log(gamma_of(alpha))
        self._bin_lo = math.ceil(math.log(_MIN_MS) / self._log_gamma)
        self._bin_hi = math.ceil(math.log(_MAX_MS) / self._log_gamma)
        self.n_bins = self._bin_hi - self._bin_lo + 2  # + the zero bin at column 0
        self._series: dict[str, int] = {}
        self._series_names: list[str] = []
        self._first_seen: list[int] = []  # per series, bucket index of its first event
        self._last_seen: list[int] = []  # per series, bucket index of latest event
        self._pending_late: list[int] = []
        self._slots: dict[tuple[int, int], _Slot] = {}
        self._free_rows: list[int] = []
        self._bins = np.zeros((64, self.n_bins), dtype=np.int64)
        self._watermarks: dict[int, int] = {}  # partition -> max event time (ms)
        self._next_offset: dict[int, int] = {}  # partition -> next offset to consume
        self._closed_through = -(2**62)  # highest bucket index already closed
        self.late_total = 0

    # -- folding -----------------------------------------------------------

    def series_id(self, key: str) -> int:
        sid = self._series.get(key)
        if sid is None:
            sid = len(self._series_names)
            self._series[key] = sid
            self._series_names.append(key)
            self._first_seen.append(2**62)
            self._last_seen.append(-(2**62))
            self._pending_late.append(0)
        return sid

    def fold(
        self,
        partition: int,
        series_keys: Sequence[str],
        ts_ms: npt.NDArray[np.int64],
        status: npt.NDArray[np.int64],
        duration_ms: npt.NDArray[np.float64],
        first_offset: int,
        offsets: npt.NDArray[np.int64] | None = None,
        event_id: IdFn | None = None,
        next_offset: int | None = None,
    ) -> None:
        """Add one batch of valid events from one source partition.

        ``offsets`` are the source offsets of the events (default: consecutive
        from ``first_offset``); ``next_offset`` is where consumption of the
        partition resumes after this batch (it also counts messages that were
        dead-lettered and so never reached the folder).
        """
        n = len(series_keys)
        if next_offset is None:
            next_offset = (
                (int(offsets[-1]) + 1) if (offsets is not None and n) else first_offset + n
            )
        self._next_offset[partition] = max(self._next_offset.get(partition, 0), next_offset)
        if n == 0:
            return
        series_id = self.series_id
        sids = np.fromiter((series_id(k) for k in series_keys), dtype=np.int64, count=n)
        buckets = ts_ms // self.width_ms
        wm = int(ts_ms.max())
        if wm > self._watermarks.get(partition, -(2**62)):
            self._watermarks[partition] = wm

        late = buckets <= self._closed_through
        if late.any():
            late_sids = sids[late]
            for sid, c in zip(*np.unique(late_sids, return_counts=True), strict=True):
                self._pending_late[int(sid)] += int(c)
            self.late_total += int(late.sum())
            keep = ~late
            sids, buckets, status, duration_ms = (
                sids[keep],
                buckets[keep],
                status[keep],
                duration_ms[keep],
            )
            idx_all = np.flatnonzero(keep)
            if sids.size == 0:
                return
        else:
            idx_all = None

        codes = (sids << 32) | (buckets - buckets.min())
        uniq, first_idx, inverse = np.unique(codes, return_index=True, return_inverse=True)
        base = int(buckets.min())
        rows = np.empty(len(uniq), dtype=np.int64)
        slots: list[_Slot] = []
        for j, code in enumerate(uniq.tolist()):
            sid, b = code >> 32, (code & 0xFFFFFFFF) + base
            slot = self._slot(sid, b)
            rows[j] = slot.row
            slots.append(slot)
            if b > self._last_seen[sid]:
                self._last_seen[sid] = b
            if b < self._first_seen[sid]:
                self._first_seen[sid] = b
        ev_rows = rows[inverse]

        counts = np.bincount(inverse, minlength=len(uniq))
        e5 = np.bincount(inverse, weights=(status >= 500), minlength=len(uniq))
        e4 = np.bincount(inverse, weights=((status >= 400) & (status < 500)), minlength=len(uniq))
        # Integer-valued weights sum exactly, so a replay with other batch boundaries
        # gives the same total to the bit.
        tot = np.bincount(inverse, weights=np.rint(duration_ms * 1000.0), minlength=len(uniq))
        mx = np.zeros(len(uniq))
        np.maximum.at(mx, inverse, duration_ms)

        bins = self._bin_columns(duration_ms)
        flat = ev_rows * self.n_bins + bins
        add = np.bincount(flat, minlength=self._bins.size)
        self._bins += add.reshape(self._bins.shape)

        src_idx = first_idx if idx_all is None else idx_all[first_idx]
        for j, slot in enumerate(slots):
            slot.count += int(counts[j])
            slot.errors_5xx += int(e5[j])
            slot.errors_4xx += int(e4[j])
            slot.total_us += float(tot[j])
            if mx[j] > slot.max_ms:
                slot.max_ms = float(mx[j])
            i = int(src_idx[j])
            off = int(offsets[i]) if offsets is not None else first_offset + i
            prev = slot.min_offsets.get(partition)
            if prev is None or off < prev:
                slot.min_offsets[partition] = off
            if event_id is not None and len(slot.samples) < self.samples_per_bucket:
                slot.samples.append(event_id(i))

    def _bin_columns(self, duration_ms: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        clipped = np.clip(duration_ms, _MIN_MS, _MAX_MS)
        idx = np.ceil(np.log(clipped) / self._log_gamma).astype(np.int64) - self._bin_lo + 1
        idx[duration_ms <= _MIN_MS] = 0
        return idx

    def _slot(self, sid: int, bucket: int) -> _Slot:
        slot = self._slots.get((sid, bucket))
        if slot is None:
            if not self._free_rows:
                old = self._bins.shape[0]
                self._bins = np.vstack([self._bins, np.zeros_like(self._bins)])
                self._free_rows.extend(range(self._bins.shape[0] - 1, old - 1, -1))
            slot = _Slot(series=sid, bucket=bucket, row=self._free_rows.pop())
            self._slots[(sid, bucket)] = slot
        return slot

    # -- closing -----------------------------------------------------------

    @property
    def watermark_ms(self) -> int | None:
        """Event time up to which every active partition has progressed."""
        return min(self._watermarks.values()) if self._watermarks else None

    def advance_watermark(self, partition: int, ms: int) -> None:
        """Move a partition's watermark forward without events (an idle source)."""
        if ms > self._watermarks.get(partition, -(2**62)):
            self._watermarks[partition] = ms

    def forget_partition(self, partition: int) -> None:
        """Stop waiting on a partition (revoked, or idle): it no longer holds the watermark."""
        self._watermarks.pop(partition, None)

    def close_ready(self, force: bool = False) -> list[BucketSummary]:
        """Close every bucket the watermark has passed (all of them when ``force``)."""
        wm = self.watermark_ms
        if force:
            if not self._slots:
                return []
            upto = max(b for _, b in self._slots)
        elif wm is None:
            return []
        else:
            upto = (wm - self.lateness_ms) // self.width_ms - 1
        if upto <= self._closed_through:
            return []
        return self._close_through(upto)

    def _close_through(self, upto: int) -> list[BucketSummary]:
        if self._closed_through > -(2**62):
            # Carry on where the last close stopped, so quiet series get a summary for
            # every bucket, also after an idle stretch closed every open bucket.
            start = self._closed_through + 1
        else:
            start = min((b for _, b in self._slots), default=upto)
        if upto - start > 10_000:  # a jump after long silence: do not emit days of zeros
            start = upto - 10_000
        ready = sorted((k for k in self._slots if k[1] <= upto), key=lambda k: (k[1], k[0]))
        by_bucket: dict[int, dict[int, _Slot]] = {}
        for key in ready:
            by_bucket.setdefault(key[1], {})[key[0]] = self._slots.pop(key)
        out: list[BucketSummary] = []
        ttl_buckets = max(1, self.series_ttl_ms // self.width_ms)
        for b in range(start, upto + 1):
            slots = by_bucket.get(b, {})
            for sid, name in enumerate(self._series_names):
                found = slots.get(sid)
                if found is None and not (
                    self._first_seen[sid] <= b and b - self._last_seen[sid] <= ttl_buckets
                ):
                    continue
                out.append(self._summary(sid, name, b, found))
        self._closed_through = upto
        return out

    def _summary(self, sid: int, name: str, bucket: int, slot: _Slot | None) -> BucketSummary:
        latency: dict[str, object] = {}
        if slot is not None:
            row = self._bins[slot.row]
            nz = np.flatnonzero(row)
            bins = {str(ZERO_BIN if c == 0 else int(c) + self._bin_lo - 1): int(row[c]) for c in nz}
            latency = {
                "alpha": self.alpha,
                "count": slot.count,
                "sum": slot.total_us / 1000,
                "max": slot.max_ms,
                "bins": bins,
            }
            row[:] = 0
            self._free_rows.append(slot.row)
        late, self._pending_late[sid] = self._pending_late[sid], 0
        return BucketSummary(
            series=name,
            labels=_labels_of(name),
            start_ms=bucket * self.width_ms,
            width_s=self.width_ms / 1000,
            count=slot.count if slot else 0,
            errors_5xx=slot.errors_5xx if slot else 0,
            errors_4xx=slot.errors_4xx if slot else 0,
            latency=latency,
            sample_event_ids=list(slot.samples) if slot else [],
            late=late,
            watermark_ms=self.watermark_ms or 0,
            origin=self.origin,
        )

    # -- offsets -----------------------------------------------------------

    def committable(self) -> dict[int, int]:
        """Per partition, the offset up to which everything is closed and emitted."""
        out = dict(self._next_offset)
        for slot in self._slots.values():
            for p, off in slot.min_offsets.items():
                if off < out.get(p, off + 1):
                    out[p] = off
        return out

    @property
    def open_buckets(self) -> int:
        return len(self._slots)

    @property
    def series_count(self) -> int:
        return len(self._series_names)
