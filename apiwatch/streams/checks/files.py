"""Read a folder of check YAML files (``*.yaml``/``*.yml``, recursively, in name order)."""

from __future__ import annotations

from pathlib import Path

from apiwatch.models.checks.definition import CheckDefinition
from apiwatch.models.checks.loading import CheckFileError, duplicate_ids, parse_check


def check_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise CheckFileError(str(directory), None, "", "no such folder of checks")
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def load_checks(directory: Path) -> list[CheckDefinition]:
    """Every check in the folder; the first invalid file raises :class:`CheckFileError`."""
    loaded: list[tuple[str, CheckDefinition]] = []
    for path in check_files(directory):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckFileError(str(path), None, "", f"cannot read: {exc}") from None
        loaded.append((str(path), parse_check(text, str(path))))
    duplicate = duplicate_ids(loaded)
    if duplicate is not None:
        raise duplicate
    return [check for _, check in loaded]
