"""``wedsync.registry.v1.RegistryService``: the gRPC face of :class:`RegistryStore`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from services.core.auth import current_caller, require_admin
from services.core.errors import InvalidArgument, PermissionDenied, Unavailable
from services.registry.feed import ChangeFeed, Overflow
from services.registry.settings import RegistryConfig
from services.registry.store import RegistryStore, decode_lease
from services.registry.timeutil import seconds_of
from services.registry.validation import check_instance, check_name
from wedsync.registry.v1 import registry_pb2 as pb
from wedsync.registry.v1 import registry_pb2_grpc


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):
    """Register/Heartbeat/Deregister/Discover/Watch; all state in Redis, any replica answers."""

    def __init__(self, store: RegistryStore, feed: ChangeFeed, config: RegistryConfig) -> None:
        self.store = store
        self.feed = feed
        self.config = config

    def _ttl(self, request: pb.RegisterRequest) -> float:
        if not request.HasField("ttl"):
            return self.config.lease_ttl_s
        asked = seconds_of(request.ttl)
        if asked < 0:
            raise InvalidArgument("ttl must not be negative")
        if asked == 0:
            return self.config.lease_ttl_s
        return min(max(asked, self.config.min_lease_ttl_s), self.config.max_lease_ttl_s)

    async def Register(
        self, request: pb.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.RegisterResponse:
        check_instance(request.instance)
        caller = current_caller()
        if caller is not None and caller.service != request.instance.service_name and not caller.is_admin:
            raise PermissionDenied(
                f"{caller.service!r} may only register its own service, not "
                f"{request.instance.service_name!r} (or use a token with the 'admin' scope)"
            )
        granted = await self.store.register(request.instance, self._ttl(request))
        return pb.RegisterResponse(lease=granted.lease)

    async def Heartbeat(
        self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> pb.HeartbeatResponse:
        if not request.lease_id:
            raise InvalidArgument("lease_id is required")
        return pb.HeartbeatResponse(lease=await self.store.heartbeat(request.lease_id))

    async def Deregister(
        self, request: pb.DeregisterRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeregisterResponse:
        if request.lease_id:
            try:
                service, instance_id, token = decode_lease(request.lease_id)
            except Exception:
                return pb.DeregisterResponse(found=False)
        elif request.service_name and request.instance_id:
            service = check_name(request.service_name, "service_name")
            instance_id = check_name(request.instance_id, "instance_id")
            token = ""
        else:
            raise InvalidArgument("give lease_id, or both service_name and instance_id")
        caller = current_caller()
        if caller is not None and caller.service != service:
            require_admin(f"deregistering an instance of {service!r}")
        return pb.DeregisterResponse(found=await self.store.deregister(service, instance_id, token))

    async def Discover(
        self, request: pb.DiscoverRequest, context: grpc.aio.ServicerContext
    ) -> pb.DiscoverResponse:
        check_name(request.service_name, "service_name")
        found = await self.store.discover(request.service_name)
        if request.healthy_only:
            found = [d for d in found if d.health.status == pb.HEALTH_STATUS_HEALTHY]
        return pb.DiscoverResponse(instances=found)

    async def Watch(
        self, request: pb.WatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchResponse]:
        wanted = set(request.service_names)
        for name in wanted:
            check_name(name, "service_names")
        sub = self.feed.subscribe()  # before the snapshot, so nothing falls between the two
        try:
            await context.send_initial_metadata(())  # headers mean: the watch is live
            if request.send_initial_state:
                names = sorted(wanted) if wanted else await self.store.services()
                for name in names:
                    for found in await self.store.discover(name):
                        yield pb.WatchResponse(
                            event=pb.WatchEvent(
                                type=pb.WATCH_EVENT_TYPE_REGISTERED,
                                instance=found.instance,
                                health=found.health,
                                occurred_at=found.registered_at,
                                initial=True,
                            )
                        )
            while True:
                try:
                    event = await sub.next()
                except Overflow:
                    raise Unavailable("watch fell behind the change feed; watch again") from None
                if not wanted or event.instance.service_name in wanted:
                    yield pb.WatchResponse(event=event)
        finally:
            self.feed.unsubscribe(sub)
