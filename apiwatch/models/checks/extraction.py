"""Variables taken from a response for the steps after it.

>>> from apiwatch.models.checks.response import Response
>>> r = Response(200, [("Set-Cookie", "sid=abc123; Path=/")], '{"token": "t-1"}', 5.0)
>>> extract_value(Extraction(name="t", jsonpath="$.token"), r)
't-1'
>>> extract_value(Extraction(name="s", header="set-cookie", regex="sid=([^;]+)"), r)
'abc123'
"""

from __future__ import annotations

import re

import jsonpath
import orjson

from apiwatch.models.checks.definition import Extraction
from apiwatch.models.checks.response import Response


class ExtractionFailed(ValueError):
    """The response did not hold what an extraction looks for."""


def extract_value(spec: Extraction, response: Response) -> str:
    if spec.jsonpath is not None:
        matches = jsonpath.findall(spec.jsonpath, response.json())
        if not matches:
            raise ExtractionFailed(f"extract {spec.name}: {spec.jsonpath} matched nothing")
        value = matches[0]
        return value if isinstance(value, str) else orjson.dumps(value).decode()
    if spec.header is not None:
        header = response.header(spec.header)
        if header is None:
            raise ExtractionFailed(f"extract {spec.name}: no {spec.header!r} header")
        source, where = header, f"header {spec.header!r}"
    else:
        source, where = response.text, "the body"
    if spec.regex is None:
        return source
    match = re.search(spec.regex, source)
    if match is None:
        raise ExtractionFailed(f"extract {spec.name}: /{spec.regex}/ found nothing in {where}")
    return match.group(1) if match.groups() else match.group(0)
