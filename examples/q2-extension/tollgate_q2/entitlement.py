"""Ask Tollgate's entitlement-check whether an online-banking user may use an
extension, and refuse the request when not.

A Q2 customer in Tollgate is one user of one financial institution, with
customer id ``"<fi_name>:<user_id>"``; a product's extensions are its
features. ``/v1/check`` answers 200 with ``allowed`` and a ``reason`` either
way; a reason this code does not know is a denial.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

DEFAULT_TIMEOUT = 3.0

# Denials a purchase would fix (HTTP 402) versus ones it would not (403);
# the same split as Tollgate's Rust RequireEntitlement layer.
PAYMENT_REQUIRED = {
    "no_subscription",
    "trial_expired",
    "cancelled",
    "feature_not_in_plan",
    "seat_limit_reached",
}


class EntitlementUnavailable(Exception):
    """Tollgate could not be asked (unreachable, timed out, or an error answer)."""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    answer: Dict[str, Any] = field(default_factory=dict)

    @property
    def http_status(self) -> int:
        if self.allowed:
            return 200
        return 402 if self.reason in PAYMENT_REQUIRED else 403


def customer_id(fi_name: str, user_id: Any) -> str:
    return f"{fi_name}:{user_id}"


class EntitlementClient:
    """``base_url`` is entitlement-check's URL; ``api_key`` one made with
    ``tollgate api-key new <name> --scopes check`` (not needed in ``make dev``)."""

    def __init__(
        self,
        base_url: str,
        api_key: Optional[str] = None,
        timeout: float = DEFAULT_TIMEOUT,
        urlopen: Callable[..., Any] = urllib.request.urlopen,
    ) -> None:
        self.url = base_url.rstrip("/") + "/v1/check"
        self._api_key = api_key
        self.timeout = timeout
        self._urlopen = urlopen

    def __repr__(self) -> str:  # never shows the key
        return f"EntitlementClient(url={self.url!r})"

    def check(self, fi_name: str, user_id: Any, product: str, extension: Optional[str] = None) -> Decision:
        query: Dict[str, Any] = {
            "marketplace": "q2",
            "customer_id": customer_id(fi_name, user_id),
            "product": product,
        }
        if extension:
            query["feature"] = extension
        headers = {"Content-Type": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(query).encode(), method="POST", headers=headers
        )
        try:
            with self._urlopen(request, timeout=self.timeout) as res:
                raw = res.read()
        except urllib.error.HTTPError as e:
            raise EntitlementUnavailable(f"entitlement-check answered HTTP {e.code}") from None
        except (urllib.error.URLError, OSError) as e:
            raise EntitlementUnavailable(f"entitlement-check unreachable: {e}") from None
        try:
            answer = json.loads(raw)
        except ValueError:
            raise EntitlementUnavailable("entitlement-check answered something other than JSON") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("allowed"), bool):
            raise EntitlementUnavailable("entitlement-check answered without `allowed`")
        return Decision(allowed=answer["allowed"], reason=str(answer.get("reason", "")), answer=answer)


class TollgateMarketplaceMixin:
    """Plays Q2's ``Q2MarketplaceMixin`` with Tollgate as the source of truth:
    before the handler's ``get``/``post`` run (Tornado's ``prepare`` hook),
    a user without an active subscription to the extension's product is
    refused (402, or 403 for a subscription that exists but may not be
    used), and the handler never runs. If Tollgate cannot be asked the
    request is refused with 503: it fails closed.

    Set ``tollgate_client``, ``tollgate_product`` (the product id in
    ``tollgate.toml``) and ``tollgate_extension`` (this extension's name, a
    feature of the product), and implement ``tollgate_subject`` to return
    the online user's ``(fi_name, user_id)``.
    """

    tollgate_client: Optional[EntitlementClient] = None
    tollgate_product: str = ""
    tollgate_extension: Optional[str] = None
    tollgate_decision: Optional[Decision] = None

    def tollgate_subject(self) -> Tuple[str, Any]:
        raise NotImplementedError("return the online user's (fi_name, user_id)")

    def prepare(self):
        if self.tollgate_client is None or not self.tollgate_product:
            return self._tollgate_refuse(503, "entitlement_unavailable", "the Tollgate guard is not configured")
        fi_name, user_id = self.tollgate_subject()
        try:
            decision = self.tollgate_client.check(fi_name, user_id, self.tollgate_product, self.tollgate_extension)
        except EntitlementUnavailable as e:
            return self._tollgate_refuse(503, "entitlement_unavailable", str(e))
        self.tollgate_decision = decision
        if not decision.allowed:
            return self._tollgate_refuse(
                decision.http_status, decision.reason or "denied", "no active subscription to this extension"
            )
        parent = getattr(super(), "prepare", None)
        return parent() if callable(parent) else None

    def _tollgate_refuse(self, status: int, code: str, message: str) -> None:
        self.set_status(status)  # type: ignore[attr-defined]
        self.finish({"error": {"code": code, "message": message}})  # type: ignore[attr-defined]
