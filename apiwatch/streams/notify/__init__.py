"""Receivers: one module per integration behind :class:`~apiwatch.streams.notify.base.Notifier`,
listed in :data:`~apiwatch.streams.notify.registry.NOTIFIERS`."""
