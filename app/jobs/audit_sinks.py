"""The timer's job that streams the audit trail to every sink in AUDIT_SINKS
(app/audit_sinks/deliver.py), every AUDIT_SINK_INTERVAL_SECONDS. Safe in every replica at once:
a sink's cursor is leased, so one replica delivers to it and the others stand by."""

from __future__ import annotations

from functools import partial

from app.audit_sinks.deliver import Delivery, deliver_to
from app.audit_sinks.sinks import build_sink
from app.audit_sinks.targets import SinkTarget, configured
from app.context import AppContext
from app.jobs.safely import safely


def stream_audit_events(ctx: AppContext) -> list[Delivery]:
    """One delivery run per configured sink; one sink's trouble never stops the others."""
    done = []
    for target in configured(ctx.settings):
        delivery = safely("audit_sink", partial(_deliver, ctx, target), sink=target.shown)
        if delivery is not None:
            done.append(delivery)
    return done


def _deliver(ctx: AppContext, target: SinkTarget) -> Delivery:
    return deliver_to(target, build_sink(target, ctx.settings), ctx.settings, ctx.db)
