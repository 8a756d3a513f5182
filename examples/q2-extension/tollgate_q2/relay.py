"""Relay Q2 subscription events to Tollgate and Tollgate's answers back to Q2.

Wire format (Tollgate's ``POST /q2``):

- body: the ``SubscriptionEvent`` as JSON, its dataclass field names as keys
  (``event_type``, ``subscription_id``, ``user_id``, ...), the marketplace's
  AppDirect event unchanged under ``event``, datetimes as ISO 8601;
- ``Tollgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`` of
  ``"<t>.<body bytes>"`` keyed by the shared signing secret; Tollgate accepts
  it within 5 minutes of its clock;
- answer: HTTP 200 ``{"success": bool, "errorCode"?, "message",
  "accountIdentifier"?}`` for every authenticated event.

Failing to reach Tollgate, or an answer that is not one, is a failure with
a clear error code, never a silent success: a subscription Tollgate does not
know would grant nothing. A cancel is no exception to that answer, and needs
none: Q2 completes a cancellation whatever the extension returns, except
``DO_NOT_CANCEL``, which only Tollgate's own policy answer produces.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import hashlib
import hmac
import json
import logging
import os
import time
import urllib.error
import urllib.request
import uuid
from typing import Any, Callable, Mapping, Optional

from q2_marketplace.models.marketplace import (
    ErrorCode,
    SubscriptionEvent,
    SubscriptionFailure,
    SubscriptionSuccess,
)

log = logging.getLogger("tollgate_q2")

SIGNATURE_HEADER = "Tollgate-Signature"
DEFAULT_TIMEOUT = 8.0


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Tollgate-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def event_json(event: SubscriptionEvent) -> bytes:
    """The event as Tollgate reads it: its fields by their dataclass names."""
    if dataclasses.is_dataclass(event):
        fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    else:
        fields = dict(vars(event))
    return json.dumps(fields, default=_json_default, separators=(",", ":")).encode()


def _json_default(value: Any) -> Any:
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON")


def _success(answer: Mapping[str, Any]) -> SubscriptionSuccess:
    # The SDK's constructor fields are not published; building the result
    # objects in these two places keeps any adjustment to one spot.
    return SubscriptionSuccess(
        message=str(answer.get("message", "")),
        account_identifier=answer.get("accountIdentifier"),
    )


def _failure(code: ErrorCode, message: str) -> SubscriptionFailure:
    return SubscriptionFailure(error_code=code, message=message)


def _error_code(name: Any) -> ErrorCode:
    """The SDK's member for Tollgate's code; UNKNOWN_ERROR for one it lacks."""
    if name == "OPERATION_CANCELED":
        name = "OPERATION_CANCELLED"
    try:
        return ErrorCode[str(name)]
    except KeyError:
        return ErrorCode.UNKNOWN_ERROR


class TollgateRelay:
    """Forwards events to Tollgate; one per extension process.

    ``base_url`` is purchase-webhook's URL (``/q2`` is appended), ``secret``
    the shared signing secret (``q2_signing_secret`` on Tollgate's side).
    ``clock`` and ``urlopen`` exist for tests.
    """

    def __init__(
        self,
        base_url: str,
        secret: str,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.time,
        urlopen: Callable[..., Any] = urllib.request.urlopen,
    ) -> None:
        if not secret:
            raise ValueError("the Tollgate signing secret is empty")
        self.url = base_url.rstrip("/") + "/q2"
        self._secret = secret.encode()
        self.timeout = timeout
        self._clock = clock
        self._urlopen = urlopen

    @classmethod
    def from_env(cls) -> "TollgateRelay":
        """From ``TOLLGATE_URL`` and ``TOLLGATE_Q2_SIGNING_SECRET``."""
        return cls(os.environ["TOLLGATE_URL"], os.environ["TOLLGATE_Q2_SIGNING_SECRET"])

    def __repr__(self) -> str:  # never shows the secret
        return f"TollgateRelay(url={self.url!r})"

    def subscribe(self, event: SubscriptionEvent):
        return self.forward(event)

    def update(self, event: SubscriptionEvent):
        return self.forward(event)

    def cancel(self, event: SubscriptionEvent):
        return self.forward(event)

    def forward(self, event: SubscriptionEvent):
        """Sends ``event`` and returns ``SubscriptionSuccess`` or ``SubscriptionFailure``."""
        body = event_json(event)
        request_id = uuid.uuid4().hex
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(self._secret, int(self._clock()), body),
                # Tollgate names it in UNKNOWN_ERROR answers and its logs.
                "X-Request-Id": request_id,
            },
        )
        what = f"{event.event_type} of subscription {event.subscription_id} (request {request_id})"
        try:
            with self._urlopen(request, timeout=self.timeout) as res:
                status, raw = res.status, res.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except (urllib.error.URLError, OSError) as e:
            log.error("Tollgate unreachable for %s: %s", what, e)
            return _failure(ErrorCode.TRANSPORT_ERROR, f"Tollgate could not be reached: {e}")
        return self._result(status, raw, what)

    def _result(self, status: int, raw: bytes, what: str):
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if status in (200, 202) and isinstance(answer, dict) and isinstance(answer.get("success"), bool):
            if status == 202:
                # Deferred provisioning: not a subscription yet.
                return _failure(ErrorCode.PENDING, str(answer.get("message", "provisioning is pending")))
            if answer["success"]:
                return _success(answer)
            code = _error_code(answer.get("errorCode"))
            log.info("Tollgate refused %s: %s", what, code.name)
            return _failure(code, str(answer.get("message", "")))
        error = answer.get("error", {}) if isinstance(answer, dict) else {}
        detail = f"Tollgate answered HTTP {status}" + (
            f" {error.get('code')}: {error.get('message')}" if isinstance(error, dict) and error else ""
        )
        log.error("%s for %s", detail, what)
        if status in (401, 503):
            # A wrong secret, a skewed clock, or Q2 not set up in Tollgate:
            # the integration's configuration, not the event.
            return _failure(ErrorCode.CONFIGURATION_ERROR, detail)
        if 400 <= status < 500:
            return _failure(ErrorCode.INVALID_RESPONSE, detail)
        return _failure(ErrorCode.UNKNOWN_ERROR, detail)


class TollgateSubscriptionHandler:
    """The three methods Q2's generated marketplace handler must implement,
    forwarding to Tollgate. Mix it into the generated class (or call the
    relay from its methods). ``tollgate_relay`` defaults to one built from
    the environment on first use."""

    tollgate_relay: Optional[TollgateRelay] = None

    def _relay(self) -> TollgateRelay:
        if self.tollgate_relay is None:
            type(self).tollgate_relay = TollgateRelay.from_env()
        return self.tollgate_relay  # type: ignore[return-value]

    def subscribe(self, event: SubscriptionEvent):
        return self._relay().subscribe(event)

    def update(self, event: SubscriptionEvent):
        return self._relay().update(event)

    def cancel(self, event: SubscriptionEvent):
        return self._relay().cancel(event)
