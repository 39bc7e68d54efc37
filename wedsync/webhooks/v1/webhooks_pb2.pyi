import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from wedsync.events.v1 import events_pb2 as _events_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IngestOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INGEST_OUTCOME_UNSPECIFIED: _ClassVar[IngestOutcome]
    INGEST_OUTCOME_ACCEPTED: _ClassVar[IngestOutcome]
    INGEST_OUTCOME_DUPLICATE: _ClassVar[IngestOutcome]
    INGEST_OUTCOME_IGNORED: _ClassVar[IngestOutcome]

class WebhookEventStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEBHOOK_EVENT_STATUS_UNSPECIFIED: _ClassVar[WebhookEventStatus]
    WEBHOOK_EVENT_STATUS_RECEIVED: _ClassVar[WebhookEventStatus]
    WEBHOOK_EVENT_STATUS_PROCESSED: _ClassVar[WebhookEventStatus]
    WEBHOOK_EVENT_STATUS_IGNORED: _ClassVar[WebhookEventStatus]
    WEBHOOK_EVENT_STATUS_FAILED: _ClassVar[WebhookEventStatus]
    WEBHOOK_EVENT_STATUS_DEAD_LETTERED: _ClassVar[WebhookEventStatus]
INGEST_OUTCOME_UNSPECIFIED: IngestOutcome
INGEST_OUTCOME_ACCEPTED: IngestOutcome
INGEST_OUTCOME_DUPLICATE: IngestOutcome
INGEST_OUTCOME_IGNORED: IngestOutcome
WEBHOOK_EVENT_STATUS_UNSPECIFIED: WebhookEventStatus
WEBHOOK_EVENT_STATUS_RECEIVED: WebhookEventStatus
WEBHOOK_EVENT_STATUS_PROCESSED: WebhookEventStatus
WEBHOOK_EVENT_STATUS_IGNORED: WebhookEventStatus
WEBHOOK_EVENT_STATUS_FAILED: WebhookEventStatus
WEBHOOK_EVENT_STATUS_DEAD_LETTERED: WebhookEventStatus

class IngestRequest(_message.Message):
    __slots__ = ("provider_id", "headers", "body", "remote_addr")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    REMOTE_ADDR_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    headers: _containers.ScalarMap[str, str]
    body: bytes
    remote_addr: str
    def __init__(self, provider_id: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., body: _Optional[bytes] = ..., remote_addr: _Optional[str] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("event_id", "outcome", "event_type", "provider_event_id")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    outcome: IngestOutcome
    event_type: str
    provider_event_id: str
    def __init__(self, event_id: _Optional[str] = ..., outcome: _Optional[_Union[IngestOutcome, str]] = ..., event_type: _Optional[str] = ..., provider_event_id: _Optional[str] = ...) -> None: ...

class WebhookEvent(_message.Message):
    __slots__ = ("event_id", "provider_id", "event_type", "provider_event_id", "cursor", "received_at", "updated_at", "status", "attempts", "last_error", "wedding_id", "normalized", "raw_body", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    WEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    NORMALIZED_FIELD_NUMBER: _ClassVar[int]
    RAW_BODY_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    provider_id: str
    event_type: str
    provider_event_id: str
    cursor: str
    received_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    status: WebhookEventStatus
    attempts: int
    last_error: str
    wedding_id: str
    normalized: _events_pb2.WeddingEvent
    raw_body: bytes
    headers: _containers.ScalarMap[str, str]
    def __init__(self, event_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., event_type: _Optional[str] = ..., provider_event_id: _Optional[str] = ..., cursor: _Optional[str] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[WebhookEventStatus, str]] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., wedding_id: _Optional[str] = ..., normalized: _Optional[_Union[_events_pb2.WeddingEvent, _Mapping]] = ..., raw_body: _Optional[bytes] = ..., headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("provider_ids", "event_types", "wedding_id", "after_cursor", "from_beginning", "include_raw")
    PROVIDER_IDS_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPES_FIELD_NUMBER: _ClassVar[int]
    WEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_CURSOR_FIELD_NUMBER: _ClassVar[int]
    FROM_BEGINNING_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RAW_FIELD_NUMBER: _ClassVar[int]
    provider_ids: _containers.RepeatedScalarFieldContainer[str]
    event_types: _containers.RepeatedScalarFieldContainer[str]
    wedding_id: str
    after_cursor: str
    from_beginning: bool
    include_raw: bool
    def __init__(self, provider_ids: _Optional[_Iterable[str]] = ..., event_types: _Optional[_Iterable[str]] = ..., wedding_id: _Optional[str] = ..., after_cursor: _Optional[str] = ..., from_beginning: _Optional[bool] = ..., include_raw: _Optional[bool] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("event", "cursor")
    EVENT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    event: WebhookEvent
    cursor: str
    def __init__(self, event: _Optional[_Union[WebhookEvent, _Mapping]] = ..., cursor: _Optional[str] = ...) -> None: ...

class GetEventRequest(_message.Message):
    __slots__ = ("event_id", "provider_id", "include_raw")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RAW_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    provider_id: str
    include_raw: bool
    def __init__(self, event_id: _Optional[str] = ..., provider_id: _Optional[str] = ..., include_raw: _Optional[bool] = ...) -> None: ...

class GetEventResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: WebhookEvent
    def __init__(self, event: _Optional[_Union[WebhookEvent, _Mapping]] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("provider_id", "event_type", "wedding_id", "status", "start_time", "end_time", "page_size", "page_token", "include_raw")
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    WEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_RAW_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    event_type: str
    wedding_id: str
    status: WebhookEventStatus
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    include_raw: bool
    def __init__(self, provider_id: _Optional[str] = ..., event_type: _Optional[str] = ..., wedding_id: _Optional[str] = ..., status: _Optional[_Union[WebhookEventStatus, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., include_raw: _Optional[bool] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[WebhookEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[WebhookEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("id", "event", "attempts", "last_error", "failed_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    event: WebhookEvent
    attempts: int
    last_error: str
    failed_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., event: _Optional[_Union[WebhookEvent, _Mapping]] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("provider_id", "page_size", "page_token")
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    page_size: int
    page_token: str
    def __init__(self, provider_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("dead_letters", "next_page_token")
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    next_page_token: str
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReplayDeadLettersRequest(_message.Message):
    __slots__ = ("provider_id", "ids")
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, provider_id: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ReplayDeadLettersResponse(_message.Message):
    __slots__ = ("replayed_count", "replayed_ids", "not_found_ids")
    REPLAYED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_IDS_FIELD_NUMBER: _ClassVar[int]
    NOT_FOUND_IDS_FIELD_NUMBER: _ClassVar[int]
    replayed_count: int
    replayed_ids: _containers.RepeatedScalarFieldContainer[str]
    not_found_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, replayed_count: _Optional[int] = ..., replayed_ids: _Optional[_Iterable[str]] = ..., not_found_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PurgeDeadLettersRequest(_message.Message):
    __slots__ = ("provider_id", "ids", "all")
    PROVIDER_ID_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    provider_id: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    all: bool
    def __init__(self, provider_id: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., all: _Optional[bool] = ...) -> None: ...

class PurgeDeadLettersResponse(_message.Message):
    __slots__ = ("purged_count", "purged_ids", "not_found_ids")
    PURGED_COUNT_FIELD_NUMBER: _ClassVar[int]
    PURGED_IDS_FIELD_NUMBER: _ClassVar[int]
    NOT_FOUND_IDS_FIELD_NUMBER: _ClassVar[int]
    purged_count: int
    purged_ids: _containers.RepeatedScalarFieldContainer[str]
    not_found_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, purged_count: _Optional[int] = ..., purged_ids: _Optional[_Iterable[str]] = ..., not_found_ids: _Optional[_Iterable[str]] = ...) -> None: ...
