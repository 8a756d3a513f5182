"""A stand-in for the Q2 SDK's ``q2_marketplace.models.marketplace`` (not
installable here), with only the names the example imports.

``SubscriptionEvent`` has the published constructor (field names, order,
types and defaults). ``from_json`` reads the dataclass field names: the SDK's
own parser is not public. The result classes' constructor fields are not
public either: these carry what the relay gives them. ``ErrorCode`` has the
published members, valued by their names.
"""

from __future__ import annotations

import datetime as _dt
import enum
import json
from dataclasses import dataclass
from typing import Any, Optional, Union


class ErrorCode(enum.Enum):
    USER_ALREADY_EXISTS = "USER_ALREADY_EXISTS"
    USER_NOT_FOUND = "USER_NOT_FOUND"
    ACCOUNT_NOT_FOUND = "ACCOUNT_NOT_FOUND"
    MAX_USERS_REACHED = "MAX_USERS_REACHED"
    UNAUTHORIZED = "UNAUTHORIZED"
    OPERATION_CANCELLED = "OPERATION_CANCELLED"
    CONFIGURATION_ERROR = "CONFIGURATION_ERROR"
    INVALID_RESPONSE = "INVALID_RESPONSE"
    PENDING = "PENDING"
    FORBIDDEN = "FORBIDDEN"
    BINDING_NOT_FOUND = "BINDING_NOT_FOUND"
    TRANSPORT_ERROR = "TRANSPORT_ERROR"
    UNKNOWN_ERROR = "UNKNOWN_ERROR"
    DO_NOT_CANCEL = "DO_NOT_CANCEL"


def _time(value: Any) -> Optional[_dt.datetime]:
    if value is None or isinstance(value, _dt.datetime):
        return value
    return _dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@dataclass
class SubscriptionEvent:
    event: dict
    event_type: str
    user_id: int
    subscription_id: str
    sso_user_id: str
    product_identifier: str
    extension_url: str
    extension_name: Optional[str] = None
    created: Optional[_dt.datetime] = None
    processed: Optional[_dt.datetime] = None
    fi_name: Optional[str] = None

    @classmethod
    def from_json(cls, data: Union[str, bytes, dict]) -> "SubscriptionEvent":
        d = json.loads(data) if isinstance(data, (str, bytes)) else dict(data)
        return cls(
            event=d["event"],
            event_type=d["event_type"],
            user_id=int(d["user_id"]),
            subscription_id=d["subscription_id"],
            sso_user_id=d["sso_user_id"],
            product_identifier=d["product_identifier"],
            extension_url=d["extension_url"],
            extension_name=d.get("extension_name"),
            created=_time(d.get("created")),
            processed=_time(d.get("processed")),
            fi_name=d.get("fi_name"),
        )


class SubscriptionSuccess:
    status_code = 200

    def __init__(self, message: str = "", account_identifier: Optional[str] = None) -> None:
        self.message = message
        self.account_identifier = account_identifier

    def __repr__(self) -> str:
        return f"SubscriptionSuccess({self.message!r}, {self.account_identifier!r})"


class SubscriptionFailure:
    status_code = 200

    def __init__(self, error_code: ErrorCode, message: str = "") -> None:
        self.error_code = error_code
        self.message = message

    def __repr__(self) -> str:
        return f"SubscriptionFailure({self.error_code.name}, {self.message!r})"
