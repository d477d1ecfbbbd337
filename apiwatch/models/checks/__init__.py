"""Synthetic checks as data: definitions, YAML loading, templating, extraction, assertions.

Everything here is pure; the runner that makes the HTTP calls is in
:mod:`apiwatch.streams.checks`.
"""
