"""The supplier directory → ``Supplier``.

The directory has no public standard, so this documents the contract the gateway reads
(JSON, snake_case): a supplier object has ``id`` and ``name`` plus any of ``category``,
``description``, ``wedsync_supplier_id``, ``location {address_lines | address, city,
region, postal_code | postcode, country_code | country, latitude | lat, longitude | lng}``,
``service_radius_km``, ``rating``, ``review_count``, ``contact {name, email, phone,
website}``, ``price_from {amount (minor units), currency}``, ``availability [{start, end,
available, capacity}]`` (ISO 8601), ``active``, ``tags``, ``metadata``, ``updated_at``.
A page is ``{"data": [suppliers], "has_more", "next_cursor"}``; errors are
``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from typing import Any

from services.gateway.normalizers.base import (
    Document,
    Normalized,
    count,
    error,
    money,
    number,
    set_ts,
    str_map,
    text,
    ts_from_iso,
)
from wedsync.events.v1 import events_pb2
from wedsync.gateway.v1 import gateway_pb2


def normalize_supplier(doc: Document) -> Normalized | None:
    body = doc.body
    if not isinstance(body, dict):
        return None
    if doc.status_code >= 400:
        err = body.get("error")
        if isinstance(err, dict):
            return Normalized(
                "error", error(doc.status_code, code=err.get("code"), message=err.get("message"))
            )
        return None
    if isinstance(body.get("data"), list):
        items = body["data"]
        if not all(_is_supplier(i) for i in items):
            return None
        return Normalized(
            "supplier_list",
            gateway_pb2.SupplierList(
                suppliers=[_supplier(i) for i in items],
                has_more=bool(body.get("has_more")),
                next_cursor=text(body.get("next_cursor")),
            ),
        )
    if _is_supplier(body):
        return Normalized("supplier", _supplier(body))
    return None


def _is_supplier(item: Any) -> bool:
    return isinstance(item, dict) and "id" in item and "name" in item


def _supplier(item: dict[str, Any]) -> gateway_pb2.Supplier:
    tags = item.get("tags")
    s = gateway_pb2.Supplier(
        id=text(item.get("id")),
        provider="supplier_directory",
        wedsync_supplier_id=text(item.get("wedsync_supplier_id")),
        name=text(item.get("name")),
        category=text(item.get("category")).lower(),
        description=text(item.get("description")),
        service_radius_km=number(item.get("service_radius_km"), "service_radius_km", 0, 40_075),
        rating=number(item.get("rating"), "rating", 0, 5),  # "on a 0-5 scale" (gateway.proto)
        review_count=count(item.get("review_count"), "review_count"),
        active=bool(item.get("active", True)),
        tags=[text(t) for t in tags] if isinstance(tags, list) else [],
        metadata=str_map(item.get("metadata")),
    )
    loc = item.get("location")
    if isinstance(loc, dict):
        lines = loc.get("address_lines", loc.get("address"))
        s.location.CopyFrom(
            gateway_pb2.Location(
                address_lines=[text(x) for x in lines]
                if isinstance(lines, list)
                else ([text(lines)] if lines else []),
                city=text(loc.get("city")),
                region=text(loc.get("region")),
                postal_code=text(loc.get("postal_code", loc.get("postcode"))),
                country_code=text(loc.get("country_code", loc.get("country"))).upper(),
                latitude=number(loc.get("latitude", loc.get("lat")), "latitude", -90, 90),
                longitude=number(loc.get("longitude", loc.get("lng")), "longitude", -180, 180),
            )
        )
    contact = item.get("contact")
    if isinstance(contact, dict):
        s.contact.CopyFrom(
            gateway_pb2.Contact(**{k: text(contact.get(k)) for k in ("name", "email", "phone", "website")})
        )
    price = item.get("price_from")
    if isinstance(price, dict):
        s.price_from.CopyFrom(money(price.get("amount"), price.get("currency")))
    slots = item.get("availability")
    for slot in slots if isinstance(slots, list) else []:
        if not isinstance(slot, dict):
            raise ValueError(
                "availability holds something other than {start, end, available, capacity} objects"
            )
        out = events_pb2.AvailabilitySlot(
            available=bool(slot.get("available", True)), capacity=count(slot.get("capacity"), "capacity")
        )
        set_ts(out, "start_time", ts_from_iso(slot.get("start")))
        set_ts(out, "end_time", ts_from_iso(slot.get("end")))
        s.availability.append(out)
    set_ts(s, "updated", ts_from_iso(item.get("updated_at")))
    return s
