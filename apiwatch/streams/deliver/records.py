"""Decoding the delivery stage's own records, with the offset bookkeeping that goes with it."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from apiwatch.streams.deliver.offsets import OffsetTracker

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)


def track_and_decode(model: type[M], record: Any, tracker: OffsetTracker) -> M | None:
    """Start tracking ``record`` and decode it as ``model``.

    Routed and retry records are apiwatch's own output, so one that does not
    decode is a bug or a foreign writer: it is logged with its coordinates and
    marked done, rather than blocking its partition forever.
    """
    tp = (record.topic, record.partition)
    tracker.begin(tp, record.offset)
    try:
        return model.model_validate_json(record.value)
    except ValidationError as exc:
        log.error(
            "skipping invalid %s at %s[%d]@%d: %s",
            model.__name__,
            record.topic,
            record.partition,
            record.offset,
            exc.errors()[0]["msg"],
        )
        tracker.done(tp, record.offset)
        return None
