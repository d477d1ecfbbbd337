"""Alert delivery, the pure part: configuration, routing, grouping, muting, dedup, backoff,
and the request bodies of each receiver. Nothing here does I/O; the Kafka and HTTP side is
:mod:`apiwatch.streams.deliver` and :mod:`apiwatch.streams.notify`.
"""
