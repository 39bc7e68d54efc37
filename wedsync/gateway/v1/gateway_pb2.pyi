import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from wedsync.events.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NormalizationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NORMALIZATION_STATUS_UNSPECIFIED: _ClassVar[NormalizationStatus]
    NORMALIZATION_STATUS_NORMALIZED: _ClassVar[NormalizationStatus]
    NORMALIZATION_STATUS_RAW: _ClassVar[NormalizationStatus]
    NORMALIZATION_STATUS_FAILED: _ClassVar[NormalizationStatus]

class ServiceStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SERVICE_STATUS_UNSPECIFIED: _ClassVar[ServiceStatus]
    SERVICE_STATUS_HEALTHY: _ClassVar[ServiceStatus]
    SERVICE_STATUS_DEGRADED: _ClassVar[ServiceStatus]
    SERVICE_STATUS_DOWN: _ClassVar[ServiceStatus]
    SERVICE_STATUS_UNCONFIGURED: _ClassVar[ServiceStatus]

class BreakerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BREAKER_STATE_UNSPECIFIED: _ClassVar[BreakerState]
    BREAKER_STATE_CLOSED: _ClassVar[BreakerState]
    BREAKER_STATE_OPEN: _ClassVar[BreakerState]
    BREAKER_STATE_HALF_OPEN: _ClassVar[BreakerState]

class PaymentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAYMENT_STATUS_UNSPECIFIED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_PENDING: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_REQUIRES_ACTION: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_PROCESSING: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_SUCCEEDED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_FAILED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_CANCELLED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_REFUNDED: _ClassVar[PaymentStatus]
    PAYMENT_STATUS_PARTIALLY_REFUNDED: _ClassVar[PaymentStatus]

class EmailStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EMAIL_STATUS_UNSPECIFIED: _ClassVar[EmailStatus]
    EMAIL_STATUS_QUEUED: _ClassVar[EmailStatus]
    EMAIL_STATUS_SENT: _ClassVar[EmailStatus]
    EMAIL_STATUS_DELIVERED: _ClassVar[EmailStatus]
    EMAIL_STATUS_OPENED: _ClassVar[EmailStatus]
    EMAIL_STATUS_BOUNCED: _ClassVar[EmailStatus]
    EMAIL_STATUS_COMPLAINED: _ClassVar[EmailStatus]
    EMAIL_STATUS_FAILED: _ClassVar[EmailStatus]
NORMALIZATION_STATUS_UNSPECIFIED: NormalizationStatus
NORMALIZATION_STATUS_NORMALIZED: NormalizationStatus
NORMALIZATION_STATUS_RAW: NormalizationStatus
NORMALIZATION_STATUS_FAILED: NormalizationStatus
SERVICE_STATUS_UNSPECIFIED: ServiceStatus
SERVICE_STATUS_HEALTHY: ServiceStatus
SERVICE_STATUS_DEGRADED: ServiceStatus
SERVICE_STATUS_DOWN: ServiceStatus
SERVICE_STATUS_UNCONFIGURED: ServiceStatus
BREAKER_STATE_UNSPECIFIED: BreakerState
BREAKER_STATE_CLOSED: BreakerState
BREAKER_STATE_OPEN: BreakerState
BREAKER_STATE_HALF_OPEN: BreakerState
PAYMENT_STATUS_UNSPECIFIED: PaymentStatus
PAYMENT_STATUS_PENDING: PaymentStatus
PAYMENT_STATUS_REQUIRES_ACTION: PaymentStatus
PAYMENT_STATUS_PROCESSING: PaymentStatus
PAYMENT_STATUS_SUCCEEDED: PaymentStatus
PAYMENT_STATUS_FAILED: PaymentStatus
PAYMENT_STATUS_CANCELLED: PaymentStatus
PAYMENT_STATUS_REFUNDED: PaymentStatus
PAYMENT_STATUS_PARTIALLY_REFUNDED: PaymentStatus
EMAIL_STATUS_UNSPECIFIED: EmailStatus
EMAIL_STATUS_QUEUED: EmailStatus
EMAIL_STATUS_SENT: EmailStatus
EMAIL_STATUS_DELIVERED: EmailStatus
EMAIL_STATUS_OPENED: EmailStatus
EMAIL_STATUS_BOUNCED: EmailStatus
EMAIL_STATUS_COMPLAINED: EmailStatus
EMAIL_STATUS_FAILED: EmailStatus

class QueryParameter(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: str
    def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class InvokeRequest(_message.Message):
    __slots__ = ("service_id", "method", "path", "query", "headers", "body", "idempotency_key", "client_id", "raw_only")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    RAW_ONLY_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    method: str
    path: str
    query: _containers.RepeatedCompositeFieldContainer[QueryParameter]
    headers: _containers.ScalarMap[str, str]
    body: bytes
    idempotency_key: str
    client_id: str
    raw_only: bool
    def __init__(self, service_id: _Optional[str] = ..., method: _Optional[str] = ..., path: _Optional[str] = ..., query: _Optional[_Iterable[_Union[QueryParameter, _Mapping]]] = ..., headers: _Optional[_Mapping[str, str]] = ..., body: _Optional[bytes] = ..., idempotency_key: _Optional[str] = ..., client_id: _Optional[str] = ..., raw_only: _Optional[bool] = ...) -> None: ...

class InvokeResponse(_message.Message):
    __slots__ = ("status_code", "headers", "body", "payment", "email", "supplier", "payment_list", "email_list", "supplier_list", "error", "normalization", "normalization_error", "instance", "attempts", "duration", "upstream_request_id")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_LIST_FIELD_NUMBER: _ClassVar[int]
    EMAIL_LIST_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_LIST_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    NORMALIZATION_FIELD_NUMBER: _ClassVar[int]
    NORMALIZATION_ERROR_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    status_code: int
    headers: _containers.ScalarMap[str, str]
    body: bytes
    payment: Payment
    email: EmailMessage
    supplier: Supplier
    payment_list: PaymentList
    email_list: EmailMessageList
    supplier_list: SupplierList
    error: NormalizedError
    normalization: NormalizationStatus
    normalization_error: str
    instance: str
    attempts: int
    duration: _duration_pb2.Duration
    upstream_request_id: str
    def __init__(self, status_code: _Optional[int] = ..., headers: _Optional[_Mapping[str, str]] = ..., body: _Optional[bytes] = ..., payment: _Optional[_Union[Payment, _Mapping]] = ..., email: _Optional[_Union[EmailMessage, _Mapping]] = ..., supplier: _Optional[_Union[Supplier, _Mapping]] = ..., payment_list: _Optional[_Union[PaymentList, _Mapping]] = ..., email_list: _Optional[_Union[EmailMessageList, _Mapping]] = ..., supplier_list: _Optional[_Union[SupplierList, _Mapping]] = ..., error: _Optional[_Union[NormalizedError, _Mapping]] = ..., normalization: _Optional[_Union[NormalizationStatus, str]] = ..., normalization_error: _Optional[str] = ..., instance: _Optional[str] = ..., attempts: _Optional[int] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., upstream_request_id: _Optional[str] = ...) -> None: ...

class ListServicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListServicesResponse(_message.Message):
    __slots__ = ("services",)
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[ServiceSummary]
    def __init__(self, services: _Optional[_Iterable[_Union[ServiceSummary, _Mapping]]] = ...) -> None: ...

class RateLimit(_message.Message):
    __slots__ = ("requests_per_second", "burst")
    REQUESTS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    requests_per_second: float
    burst: int
    def __init__(self, requests_per_second: _Optional[float] = ..., burst: _Optional[int] = ...) -> None: ...

class ServiceSummary(_message.Message):
    __slots__ = ("service_id", "display_name", "kind", "normalizer", "instances", "status", "breaker_state", "rate_limit")
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NORMALIZER_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BREAKER_STATE_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    display_name: str
    kind: str
    normalizer: str
    instances: _containers.RepeatedScalarFieldContainer[str]
    status: ServiceStatus
    breaker_state: BreakerState
    rate_limit: RateLimit
    def __init__(self, service_id: _Optional[str] = ..., display_name: _Optional[str] = ..., kind: _Optional[str] = ..., normalizer: _Optional[str] = ..., instances: _Optional[_Iterable[str]] = ..., status: _Optional[_Union[ServiceStatus, str]] = ..., breaker_state: _Optional[_Union[BreakerState, str]] = ..., rate_limit: _Optional[_Union[RateLimit, _Mapping]] = ...) -> None: ...

class GetServiceHealthRequest(_message.Message):
    __slots__ = ("service_id",)
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    def __init__(self, service_id: _Optional[str] = ...) -> None: ...

class GetServiceHealthResponse(_message.Message):
    __slots__ = ("health",)
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    health: ServiceHealth
    def __init__(self, health: _Optional[_Union[ServiceHealth, _Mapping]] = ...) -> None: ...

class ServiceHealth(_message.Message):
    __slots__ = ("service_id", "status", "breaker_state", "error_rate", "window", "request_count", "latency_p50", "latency_p90", "latency_p99", "consecutive_failures", "last_check", "last_success", "last_failure", "last_error", "instances")
    SERVICE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BREAKER_STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    REQUEST_COUNT_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P90_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    LAST_CHECK_FIELD_NUMBER: _ClassVar[int]
    LAST_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    LAST_FAILURE_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    service_id: str
    status: ServiceStatus
    breaker_state: BreakerState
    error_rate: float
    window: _duration_pb2.Duration
    request_count: int
    latency_p50: _duration_pb2.Duration
    latency_p90: _duration_pb2.Duration
    latency_p99: _duration_pb2.Duration
    consecutive_failures: int
    last_check: _timestamp_pb2.Timestamp
    last_success: _timestamp_pb2.Timestamp
    last_failure: _timestamp_pb2.Timestamp
    last_error: str
    instances: _containers.RepeatedCompositeFieldContainer[InstanceHealth]
    def __init__(self, service_id: _Optional[str] = ..., status: _Optional[_Union[ServiceStatus, str]] = ..., breaker_state: _Optional[_Union[BreakerState, str]] = ..., error_rate: _Optional[float] = ..., window: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., request_count: _Optional[int] = ..., latency_p50: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p90: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., latency_p99: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., consecutive_failures: _Optional[int] = ..., last_check: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_success: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_failure: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ..., instances: _Optional[_Iterable[_Union[InstanceHealth, _Mapping]]] = ...) -> None: ...

class InstanceHealth(_message.Message):
    __slots__ = ("instance", "status", "breaker_state", "outstanding_requests", "consecutive_failures", "last_error", "ejected_until", "latency_ewma")
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    BREAKER_STATE_FIELD_NUMBER: _ClassVar[int]
    OUTSTANDING_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    EJECTED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    LATENCY_EWMA_FIELD_NUMBER: _ClassVar[int]
    instance: str
    status: ServiceStatus
    breaker_state: BreakerState
    outstanding_requests: int
    consecutive_failures: int
    last_error: str
    ejected_until: _timestamp_pb2.Timestamp
    latency_ewma: _duration_pb2.Duration
    def __init__(self, instance: _Optional[str] = ..., status: _Optional[_Union[ServiceStatus, str]] = ..., breaker_state: _Optional[_Union[BreakerState, str]] = ..., outstanding_requests: _Optional[int] = ..., consecutive_failures: _Optional[int] = ..., last_error: _Optional[str] = ..., ejected_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., latency_ewma: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class NormalizedError(_message.Message):
    __slots__ = ("http_status", "type", "code", "decline_code", "message", "param")
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    DECLINE_CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PARAM_FIELD_NUMBER: _ClassVar[int]
    http_status: int
    type: str
    code: str
    decline_code: str
    message: str
    param: str
    def __init__(self, http_status: _Optional[int] = ..., type: _Optional[str] = ..., code: _Optional[str] = ..., decline_code: _Optional[str] = ..., message: _Optional[str] = ..., param: _Optional[str] = ...) -> None: ...

class Payment(_message.Message):
    __slots__ = ("id", "provider", "status", "amount", "amount_received", "amount_refunded", "customer_id", "customer_email", "wedding_id", "supplier_id", "description", "payment_method_type", "metadata", "created", "updated", "last_error")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_REFUNDED_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_EMAIL_FIELD_NUMBER: _ClassVar[int]
    WEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_METHOD_TYPE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    provider: str
    status: PaymentStatus
    amount: _events_pb2.Money
    amount_received: _events_pb2.Money
    amount_refunded: _events_pb2.Money
    customer_id: str
    customer_email: str
    wedding_id: str
    supplier_id: str
    description: str
    payment_method_type: str
    metadata: _containers.ScalarMap[str, str]
    created: _timestamp_pb2.Timestamp
    updated: _timestamp_pb2.Timestamp
    last_error: NormalizedError
    def __init__(self, id: _Optional[str] = ..., provider: _Optional[str] = ..., status: _Optional[_Union[PaymentStatus, str]] = ..., amount: _Optional[_Union[_events_pb2.Money, _Mapping]] = ..., amount_received: _Optional[_Union[_events_pb2.Money, _Mapping]] = ..., amount_refunded: _Optional[_Union[_events_pb2.Money, _Mapping]] = ..., customer_id: _Optional[str] = ..., customer_email: _Optional[str] = ..., wedding_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., description: _Optional[str] = ..., payment_method_type: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[_Union[NormalizedError, _Mapping]] = ...) -> None: ...

class PaymentList(_message.Message):
    __slots__ = ("payments", "has_more", "next_cursor")
    PAYMENTS_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    payments: _containers.RepeatedCompositeFieldContainer[Payment]
    has_more: bool
    next_cursor: str
    def __init__(self, payments: _Optional[_Iterable[_Union[Payment, _Mapping]]] = ..., has_more: _Optional[bool] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class EmailMessage(_message.Message):
    __slots__ = ("id", "provider", "status", "from_address", "to", "cc", "bcc", "reply_to", "subject", "tags", "wedding_id", "supplier_id", "metadata", "created", "sent_at", "delivered_at", "opened_at", "last_error")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FROM_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TO_FIELD_NUMBER: _ClassVar[int]
    CC_FIELD_NUMBER: _ClassVar[int]
    BCC_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    WEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    provider: str
    status: EmailStatus
    from_address: str
    to: _containers.RepeatedScalarFieldContainer[str]
    cc: _containers.RepeatedScalarFieldContainer[str]
    bcc: _containers.RepeatedScalarFieldContainer[str]
    reply_to: str
    subject: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    wedding_id: str
    supplier_id: str
    metadata: _containers.ScalarMap[str, str]
    created: _timestamp_pb2.Timestamp
    sent_at: _timestamp_pb2.Timestamp
    delivered_at: _timestamp_pb2.Timestamp
    opened_at: _timestamp_pb2.Timestamp
    last_error: NormalizedError
    def __init__(self, id: _Optional[str] = ..., provider: _Optional[str] = ..., status: _Optional[_Union[EmailStatus, str]] = ..., from_address: _Optional[str] = ..., to: _Optional[_Iterable[str]] = ..., cc: _Optional[_Iterable[str]] = ..., bcc: _Optional[_Iterable[str]] = ..., reply_to: _Optional[str] = ..., subject: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., wedding_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delivered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[_Union[NormalizedError, _Mapping]] = ...) -> None: ...

class EmailMessageList(_message.Message):
    __slots__ = ("messages", "has_more", "next_cursor")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[EmailMessage]
    has_more: bool
    next_cursor: str
    def __init__(self, messages: _Optional[_Iterable[_Union[EmailMessage, _Mapping]]] = ..., has_more: _Optional[bool] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class Location(_message.Message):
    __slots__ = ("address_lines", "city", "region", "postal_code", "country_code", "latitude", "longitude")
    ADDRESS_LINES_FIELD_NUMBER: _ClassVar[int]
    CITY_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    POSTAL_CODE_FIELD_NUMBER: _ClassVar[int]
    COUNTRY_CODE_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    address_lines: _containers.RepeatedScalarFieldContainer[str]
    city: str
    region: str
    postal_code: str
    country_code: str
    latitude: float
    longitude: float
    def __init__(self, address_lines: _Optional[_Iterable[str]] = ..., city: _Optional[str] = ..., region: _Optional[str] = ..., postal_code: _Optional[str] = ..., country_code: _Optional[str] = ..., latitude: _Optional[float] = ..., longitude: _Optional[float] = ...) -> None: ...

class Contact(_message.Message):
    __slots__ = ("name", "email", "phone", "website")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    WEBSITE_FIELD_NUMBER: _ClassVar[int]
    name: str
    email: str
    phone: str
    website: str
    def __init__(self, name: _Optional[str] = ..., email: _Optional[str] = ..., phone: _Optional[str] = ..., website: _Optional[str] = ...) -> None: ...

class Supplier(_message.Message):
    __slots__ = ("id", "provider", "wedsync_supplier_id", "name", "category", "description", "location", "service_radius_km", "rating", "review_count", "contact", "price_from", "availability", "active", "tags", "metadata", "updated")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    WEDSYNC_SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    SERVICE_RADIUS_KM_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    REVIEW_COUNT_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    PRICE_FROM_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    id: str
    provider: str
    wedsync_supplier_id: str
    name: str
    category: str
    description: str
    location: Location
    service_radius_km: float
    rating: float
    review_count: int
    contact: Contact
    price_from: _events_pb2.Money
    availability: _containers.RepeatedCompositeFieldContainer[_events_pb2.AvailabilitySlot]
    active: bool
    tags: _containers.RepeatedScalarFieldContainer[str]
    metadata: _containers.ScalarMap[str, str]
    updated: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., provider: _Optional[str] = ..., wedsync_supplier_id: _Optional[str] = ..., name: _Optional[str] = ..., category: _Optional[str] = ..., description: _Optional[str] = ..., location: _Optional[_Union[Location, _Mapping]] = ..., service_radius_km: _Optional[float] = ..., rating: _Optional[float] = ..., review_count: _Optional[int] = ..., contact: _Optional[_Union[Contact, _Mapping]] = ..., price_from: _Optional[_Union[_events_pb2.Money, _Mapping]] = ..., availability: _Optional[_Iterable[_Union[_events_pb2.AvailabilitySlot, _Mapping]]] = ..., active: _Optional[bool] = ..., tags: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., updated: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SupplierList(_message.Message):
    __slots__ = ("suppliers", "has_more", "next_cursor")
    SUPPLIERS_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    suppliers: _containers.RepeatedCompositeFieldContainer[Supplier]
    has_more: bool
    next_cursor: str
    def __init__(self, suppliers: _Optional[_Iterable[_Union[Supplier, _Mapping]]] = ..., has_more: _Optional[bool] = ..., next_cursor: _Optional[str] = ...) -> None: ...
