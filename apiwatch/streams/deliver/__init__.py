"""The delivery stage, the Kafka side: route, group, inhibit, silence, dedup, send, retry.

:func:`run_delivery` is the entry point for ``apiwatch deliver`` and ``apiwatch worker``.
"""

from apiwatch.streams.deliver.worker import DeliveryWorker, run_delivery

__all__ = ["DeliveryWorker", "run_delivery"]
