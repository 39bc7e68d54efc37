import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from wedsync.registry.v1 import message_pb2 as _message_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeliveryAck(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_ACK_UNSPECIFIED: _ClassVar[DeliveryAck]
    DELIVERY_ACK_ACCEPTED: _ClassVar[DeliveryAck]
    DELIVERY_ACK_RETRY: _ClassVar[DeliveryAck]
    DELIVERY_ACK_REJECT: _ClassVar[DeliveryAck]
DELIVERY_ACK_UNSPECIFIED: DeliveryAck
DELIVERY_ACK_ACCEPTED: DeliveryAck
DELIVERY_ACK_RETRY: DeliveryAck
DELIVERY_ACK_REJECT: DeliveryAck

class DeliverRequest(_message.Message):
    __slots__ = ("message",)
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    message: _message_pb2.Message
    def __init__(self, message: _Optional[_Union[_message_pb2.Message, _Mapping]] = ...) -> None: ...

class DeliverResponse(_message.Message):
    __slots__ = ("ack", "retry_after", "reason")
    ACK_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ack: DeliveryAck
    retry_after: _duration_pb2.Duration
    reason: str
    def __init__(self, ack: _Optional[_Union[DeliveryAck, str]] = ..., retry_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class StreamDelivery(_message.Message):
    __slots__ = ("delivery_id", "message")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    delivery_id: int
    message: _message_pb2.Message
    def __init__(self, delivery_id: _Optional[int] = ..., message: _Optional[_Union[_message_pb2.Message, _Mapping]] = ...) -> None: ...

class DeliverStreamRequest(_message.Message):
    __slots__ = ("deliveries",)
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[StreamDelivery]
    def __init__(self, deliveries: _Optional[_Iterable[_Union[StreamDelivery, _Mapping]]] = ...) -> None: ...

class StreamAck(_message.Message):
    __slots__ = ("delivery_id", "message_id", "ack", "retry_after", "reason")
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    delivery_id: int
    message_id: str
    ack: DeliveryAck
    retry_after: _duration_pb2.Duration
    reason: str
    def __init__(self, delivery_id: _Optional[int] = ..., message_id: _Optional[str] = ..., ack: _Optional[_Union[DeliveryAck, str]] = ..., retry_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class DeliverStreamResponse(_message.Message):
    __slots__ = ("acks",)
    ACKS_FIELD_NUMBER: _ClassVar[int]
    acks: _containers.RepeatedCompositeFieldContainer[StreamAck]
    def __init__(self, acks: _Optional[_Iterable[_Union[StreamAck, _Mapping]]] = ...) -> None: ...
