"""The Faust application that hosts the stages after aggregation.

Only wiring lives here: broker URL, credentials, and the settings that suit
the embedded broker (a short session timeout, since Tansu completes a first
group join only after about half of it). The stages register their own
agents and tables (see :mod:`apiwatch.streams.detect`).
"""

from __future__ import annotations

from typing import Any

import faust

from apiwatch.settings import Settings
from apiwatch.streams.kafka import ssl_context


def broker_url(bootstrap: str) -> str:
    """>>> broker_url("a:9092,b:9092")
    'kafka://a:9092;kafka://b:9092'
    """
    return ";".join(f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip())


def _credentials(settings: Settings) -> Any:
    k = settings.kafka
    ctx = ssl_context(k)
    if k.sasl_mechanism and k.sasl_username and k.sasl_password:
        return faust.SASLCredentials(
            username=k.sasl_username,
            password=k.sasl_password.get_secret_value(),
            mechanism=k.sasl_mechanism,
            ssl_context=ctx,
        )
    if ctx is not None:
        return faust.SSLCredentials(ctx)
    return None


def build_app(settings: Settings, bootstrap: str, app_id: str | None = None) -> faust.App:
    k = settings.kafka
    state_dir = settings.app.state_dir
    state_dir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        app_id or settings.app.app_id,
        broker=broker_url(bootstrap),
        broker_credentials=_credentials(settings),
        broker_client_id=f"{k.client_id}-faust",
        broker_session_timeout=k.session_timeout_s,
        broker_heartbeat_interval=max(0.5, k.session_timeout_s / 4),
        broker_request_timeout=max(k.request_timeout_s, k.session_timeout_s + 5),
        store="memory://",
        datadir=str(state_dir / "faust"),
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        web_enabled=False,
        autodiscover=False,
        table_cleanup_interval=3600.0,
        broker_commit_interval=1.0,
        # Faust compares what a standby (or a persisted store) has read with the
        # changelog's reported end and crashes the worker when it is further. Tansu
        # reports the end of a partition as the base offset of its last batch + 1,
        # so a standby that read a multi-record last batch is "ahead" (315 > 314)
        # and the worker died mid-rebalance. State is checked against the real end
        # of the changelog anyway (apiwatch.streams.restore).
        recovery_consistency_check=False,
    )
