import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EmailBounceType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EMAIL_BOUNCE_TYPE_UNSPECIFIED: _ClassVar[EmailBounceType]
    EMAIL_BOUNCE_TYPE_HARD: _ClassVar[EmailBounceType]
    EMAIL_BOUNCE_TYPE_SOFT: _ClassVar[EmailBounceType]
    EMAIL_BOUNCE_TYPE_BLOCKED: _ClassVar[EmailBounceType]
EMAIL_BOUNCE_TYPE_UNSPECIFIED: EmailBounceType
EMAIL_BOUNCE_TYPE_HARD: EmailBounceType
EMAIL_BOUNCE_TYPE_SOFT: EmailBounceType
EMAIL_BOUNCE_TYPE_BLOCKED: EmailBounceType

class Money(_message.Message):
    __slots__ = ("amount_minor", "currency")
    AMOUNT_MINOR_FIELD_NUMBER: _ClassVar[int]
    CURRENCY_FIELD_NUMBER: _ClassVar[int]
    amount_minor: int
    currency: str
    def __init__(self, amount_minor: _Optional[int] = ..., currency: _Optional[str] = ...) -> None: ...

class PaymentSucceeded(_message.Message):
    __slots__ = ("wedding_id", "supplier_id", "payment_intent_id", "charge_id", "customer_id", "amount", "fee", "description", "payment_method_type", "receipt_url", "succeeded_at")
    WEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_INTENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHARGE_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    FEE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_METHOD_TYPE_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_URL_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_AT_FIELD_NUMBER: _ClassVar[int]
    wedding_id: str
    supplier_id: str
    payment_intent_id: str
    charge_id: str
    customer_id: str
    amount: Money
    fee: Money
    description: str
    payment_method_type: str
    receipt_url: str
    succeeded_at: _timestamp_pb2.Timestamp
    def __init__(self, wedding_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., payment_intent_id: _Optional[str] = ..., charge_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., amount: _Optional[_Union[Money, _Mapping]] = ..., fee: _Optional[_Union[Money, _Mapping]] = ..., description: _Optional[str] = ..., payment_method_type: _Optional[str] = ..., receipt_url: _Optional[str] = ..., succeeded_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PaymentFailed(_message.Message):
    __slots__ = ("wedding_id", "supplier_id", "payment_intent_id", "charge_id", "customer_id", "amount", "failure_code", "failure_message", "decline_code", "payment_method_type", "failed_at")
    WEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_INTENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHARGE_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_CODE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DECLINE_CODE_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_METHOD_TYPE_FIELD_NUMBER: _ClassVar[int]
    FAILED_AT_FIELD_NUMBER: _ClassVar[int]
    wedding_id: str
    supplier_id: str
    payment_intent_id: str
    charge_id: str
    customer_id: str
    amount: Money
    failure_code: str
    failure_message: str
    decline_code: str
    payment_method_type: str
    failed_at: _timestamp_pb2.Timestamp
    def __init__(self, wedding_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., payment_intent_id: _Optional[str] = ..., charge_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., amount: _Optional[_Union[Money, _Mapping]] = ..., failure_code: _Optional[str] = ..., failure_message: _Optional[str] = ..., decline_code: _Optional[str] = ..., payment_method_type: _Optional[str] = ..., failed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BookingConfirmed(_message.Message):
    __slots__ = ("wedding_id", "supplier_id", "booking_id", "service_description", "starts_at", "ends_at", "total", "deposit", "confirmed_at")
    WEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    DEPOSIT_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_AT_FIELD_NUMBER: _ClassVar[int]
    wedding_id: str
    supplier_id: str
    booking_id: str
    service_description: str
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    total: Money
    deposit: Money
    confirmed_at: _timestamp_pb2.Timestamp
    def __init__(self, wedding_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., booking_id: _Optional[str] = ..., service_description: _Optional[str] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., total: _Optional[_Union[Money, _Mapping]] = ..., deposit: _Optional[_Union[Money, _Mapping]] = ..., confirmed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BookingCancelled(_message.Message):
    __slots__ = ("wedding_id", "supplier_id", "booking_id", "reason", "cancelled_by", "refund_amount", "cancelled_at")
    WEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    BOOKING_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_BY_FIELD_NUMBER: _ClassVar[int]
    REFUND_AMOUNT_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_AT_FIELD_NUMBER: _ClassVar[int]
    wedding_id: str
    supplier_id: str
    booking_id: str
    reason: str
    cancelled_by: str
    refund_amount: Money
    cancelled_at: _timestamp_pb2.Timestamp
    def __init__(self, wedding_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., booking_id: _Optional[str] = ..., reason: _Optional[str] = ..., cancelled_by: _Optional[str] = ..., refund_amount: _Optional[_Union[Money, _Mapping]] = ..., cancelled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AvailabilitySlot(_message.Message):
    __slots__ = ("start_time", "end_time", "available", "capacity")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    available: bool
    capacity: int
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., available: _Optional[bool] = ..., capacity: _Optional[int] = ...) -> None: ...

class AvailabilityUpdated(_message.Message):
    __slots__ = ("wedding_id", "supplier_id", "dates", "available", "slots", "time_zone", "updated_at")
    WEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    DATES_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    wedding_id: str
    supplier_id: str
    dates: _containers.RepeatedScalarFieldContainer[str]
    available: bool
    slots: _containers.RepeatedCompositeFieldContainer[AvailabilitySlot]
    time_zone: str
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, wedding_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., dates: _Optional[_Iterable[str]] = ..., available: _Optional[bool] = ..., slots: _Optional[_Iterable[_Union[AvailabilitySlot, _Mapping]]] = ..., time_zone: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EmailDelivered(_message.Message):
    __slots__ = ("wedding_id", "supplier_id", "message_id", "recipient", "subject", "smtp_response", "delivered_at")
    WEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    SMTP_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    wedding_id: str
    supplier_id: str
    message_id: str
    recipient: str
    subject: str
    smtp_response: str
    delivered_at: _timestamp_pb2.Timestamp
    def __init__(self, wedding_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., message_id: _Optional[str] = ..., recipient: _Optional[str] = ..., subject: _Optional[str] = ..., smtp_response: _Optional[str] = ..., delivered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EmailBounced(_message.Message):
    __slots__ = ("wedding_id", "supplier_id", "message_id", "recipient", "bounce_type", "reason", "diagnostic_code", "bounced_at")
    WEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    BOUNCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DIAGNOSTIC_CODE_FIELD_NUMBER: _ClassVar[int]
    BOUNCED_AT_FIELD_NUMBER: _ClassVar[int]
    wedding_id: str
    supplier_id: str
    message_id: str
    recipient: str
    bounce_type: EmailBounceType
    reason: str
    diagnostic_code: str
    bounced_at: _timestamp_pb2.Timestamp
    def __init__(self, wedding_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., message_id: _Optional[str] = ..., recipient: _Optional[str] = ..., bounce_type: _Optional[_Union[EmailBounceType, str]] = ..., reason: _Optional[str] = ..., diagnostic_code: _Optional[str] = ..., bounced_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EmailOpened(_message.Message):
    __slots__ = ("wedding_id", "supplier_id", "message_id", "recipient", "user_agent", "opened_at")
    WEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    wedding_id: str
    supplier_id: str
    message_id: str
    recipient: str
    user_agent: str
    opened_at: _timestamp_pb2.Timestamp
    def __init__(self, wedding_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., message_id: _Optional[str] = ..., recipient: _Optional[str] = ..., user_agent: _Optional[str] = ..., opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class WeddingEvent(_message.Message):
    __slots__ = ("id", "type", "wedding_id", "supplier_id", "source", "source_event_id", "occurred_at", "received_at", "payment_succeeded", "payment_failed", "booking_confirmed", "booking_cancelled", "availability_updated", "email_delivered", "email_bounced", "email_opened", "attributes")
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    WEDDING_ID_FIELD_NUMBER: _ClassVar[int]
    SUPPLIER_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_AT_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    PAYMENT_FAILED_FIELD_NUMBER: _ClassVar[int]
    BOOKING_CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    BOOKING_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_UPDATED_FIELD_NUMBER: _ClassVar[int]
    EMAIL_DELIVERED_FIELD_NUMBER: _ClassVar[int]
    EMAIL_BOUNCED_FIELD_NUMBER: _ClassVar[int]
    EMAIL_OPENED_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    wedding_id: str
    supplier_id: str
    source: str
    source_event_id: str
    occurred_at: _timestamp_pb2.Timestamp
    received_at: _timestamp_pb2.Timestamp
    payment_succeeded: PaymentSucceeded
    payment_failed: PaymentFailed
    booking_confirmed: BookingConfirmed
    booking_cancelled: BookingCancelled
    availability_updated: AvailabilityUpdated
    email_delivered: EmailDelivered
    email_bounced: EmailBounced
    email_opened: EmailOpened
    attributes: _containers.ScalarMap[str, str]
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., wedding_id: _Optional[str] = ..., supplier_id: _Optional[str] = ..., source: _Optional[str] = ..., source_event_id: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., received_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., payment_succeeded: _Optional[_Union[PaymentSucceeded, _Mapping]] = ..., payment_failed: _Optional[_Union[PaymentFailed, _Mapping]] = ..., booking_confirmed: _Optional[_Union[BookingConfirmed, _Mapping]] = ..., booking_cancelled: _Optional[_Union[BookingCancelled, _Mapping]] = ..., availability_updated: _Optional[_Union[AvailabilityUpdated, _Mapping]] = ..., email_delivered: _Optional[_Union[EmailDelivered, _Mapping]] = ..., email_bounced: _Optional[_Union[EmailBounced, _Mapping]] = ..., email_opened: _Optional[_Union[EmailOpened, _Mapping]] = ..., attributes: _Optional[_Mapping[str, str]] = ...) -> None: ...
