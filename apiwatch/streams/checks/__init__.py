"""The synthetic check runner: HTTP execution with phase timings, retries, schedule, publishing.

The pure parts (definitions, assertions, extraction) are in :mod:`apiwatch.models.checks`.
"""
