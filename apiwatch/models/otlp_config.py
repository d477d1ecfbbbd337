"""Configuration of the OTLP bridge (the ``otlp`` section).

Kept apart from the protobuf-heavy converter so that loading settings stays light.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: The two encodings of the Collector's Kafka exporter for traces.
Encoding = Literal["otlp_proto", "otlp_json"]


class OtlpConfig(BaseModel):
    """The OTLP bridge: the Collector's Kafka exporter topic in, RUM events out.

    The topic name itself is ``topics.otlp``; ``encoding`` ``auto`` reads both
    encodings, telling them apart per message, so a collector can switch
    without a restart here.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    group_id: str = "apiwatch-otlp"
    encoding: Encoding | Literal["auto"] = "auto"
    max_batch: int = Field(2_000, ge=1, le=100_000)
