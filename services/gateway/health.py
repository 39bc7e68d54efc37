"""Upstream health: HEALTHY / DEGRADED / DOWN / UNCONFIGURED, and its proto form.

Rules, per upstream (this replica's view):

* UNCONFIGURED — credentials or base URLs missing from the environment;
* DOWN — no instance would take a call now (every breaker open);
* DEGRADED — some instance's breaker is open or half-open, or the rolling error rate is
  at least ``degraded_error_rate`` over at least ``min_requests`` attempts;
* HEALTHY — otherwise.

The service-level breaker state is CLOSED when every instance's is, OPEN when none would
take a call, HALF_OPEN in between.
"""

from __future__ import annotations

import datetime

from google.protobuf import duration_pb2, timestamp_pb2

from services.core.breaker import State
from services.gateway.balancer import Instance
from services.gateway.stats import RollingStats
from services.gateway.upstream import Upstream
from wedsync.gateway.v1 import gateway_pb2

SS = gateway_pb2.ServiceStatus
BS = gateway_pb2.BreakerState
_BREAKER = {
    State.CLOSED: BS.BREAKER_STATE_CLOSED,
    State.OPEN: BS.BREAKER_STATE_OPEN,
    State.HALF_OPEN: BS.BREAKER_STATE_HALF_OPEN,
}


def breaker_state(upstream: Upstream) -> gateway_pb2.BreakerState:
    if not upstream.instances:
        return BS.BREAKER_STATE_UNSPECIFIED
    states = [i.breaker.state for i in upstream.instances]
    if all(s is State.CLOSED for s in states):
        return BS.BREAKER_STATE_CLOSED
    if not any(i.breaker.available() or i.breaker.state is State.HALF_OPEN for i in upstream.instances):
        return BS.BREAKER_STATE_OPEN
    return BS.BREAKER_STATE_HALF_OPEN


def status(upstream: Upstream) -> gateway_pb2.ServiceStatus:
    if not upstream.configured:
        return SS.SERVICE_STATUS_UNCONFIGURED
    breaker = breaker_state(upstream)
    if breaker == BS.BREAKER_STATE_OPEN or not upstream.instances:
        return SS.SERVICE_STATUS_DOWN
    cfg = upstream.config.health
    stats = upstream.stats
    if breaker != BS.BREAKER_STATE_CLOSED or (
        stats.count() >= cfg.min_requests and stats.error_rate() >= cfg.degraded_error_rate
    ):
        return SS.SERVICE_STATUS_DEGRADED
    return SS.SERVICE_STATUS_HEALTHY


def _instance_status(instance: Instance) -> gateway_pb2.ServiceStatus:
    state = instance.breaker.state
    if state is State.OPEN:
        return SS.SERVICE_STATUS_DOWN
    return SS.SERVICE_STATUS_HEALTHY if state is State.CLOSED else SS.SERVICE_STATUS_DEGRADED


def _duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromTimedelta(datetime.timedelta(seconds=seconds))
    return d


def _ts(epoch: float | None) -> timestamp_pb2.Timestamp | None:
    if epoch is None:
        return None
    t = timestamp_pb2.Timestamp()
    t.FromNanoseconds(int(epoch * 1e9))
    return t


def _fill_times(msg: gateway_pb2.ServiceHealth, stats: RollingStats) -> None:
    for field, value in (("last_success", stats.last_success), ("last_failure", stats.last_failure)):
        ts = _ts(value)
        if ts is not None:
            getattr(msg, field).CopyFrom(ts)


def service_health(upstream: Upstream, now: float) -> gateway_pb2.ServiceHealth:
    stats = upstream.stats
    p50, p90, p99 = stats.percentiles(0.5, 0.9, 0.99)
    msg = gateway_pb2.ServiceHealth(
        service_id=upstream.service_id,
        status=status(upstream),
        breaker_state=breaker_state(upstream),
        error_rate=stats.error_rate(),
        window=_duration(stats.window_s),
        request_count=stats.count(),
        latency_p50=_duration(p50),
        latency_p90=_duration(p90),
        latency_p99=_duration(p99),
        consecutive_failures=stats.consecutive_failures,
        last_check=_ts(now),
        last_error=stats.last_error,
    )
    _fill_times(msg, stats)
    for inst in upstream.instances:
        item = gateway_pb2.InstanceHealth(
            instance=inst.url,
            status=_instance_status(inst),
            breaker_state=_BREAKER[inst.breaker.state],
            outstanding_requests=inst.outstanding,
            consecutive_failures=inst.stats.consecutive_failures,
            last_error=inst.stats.last_error,
            latency_ewma=_duration(inst.stats.latency_ewma),
        )
        if inst.breaker.state is State.OPEN:
            ejected = _ts(now + max(0.0, inst.breaker.open_remaining()))
            if ejected is not None:
                item.ejected_until.CopyFrom(ejected)
        msg.instances.append(item)
    return msg
