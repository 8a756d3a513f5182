"""What the example's tests share: where the running Tollgate functions are
(the Rust harness starts them and sets the environment), and events as the
Q2 marketplace hands them to an extension."""

import datetime as dt
import os
import uuid

from q2_marketplace.models.marketplace import SubscriptionEvent

PRODUCT_IDENTIFIER = "3f2c7f0e-budgethelper"  # tollgate.example.toml
PRODUCT = "budget-helper"
FI = "Local Credit Union"


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(
            f"{name} is not set: these tests run against real Tollgate functions; "
            "`cargo test -p tollgate-cli --test q2_extension_python` starts them"
        )
    return value


def tollgate_url() -> str:
    return env("TOLLGATE_URL")


def check_url() -> str:
    return env("TOLLGATE_CHECK_URL")


def signing_secret() -> str:
    return env("TOLLGATE_Q2_SIGNING_SECRET")


def new_user() -> int:
    """A user no other test touches."""
    return uuid.uuid4().int % 10**9


def event(event_type: str, subscription_id: str, user_id: int, edition=None,
          product_identifier: str = PRODUCT_IDENTIFIER) -> SubscriptionEvent:
    payload = {}
    if event_type != "SUBSCRIPTION_ORDER":
        payload["account"] = {"accountIdentifier": subscription_id}
    if edition:
        payload["order"] = {"editionCode": edition, "pricingDuration": "MONTHLY",
                            "items": [{"unit": "USER", "quantity": "1"}]}
    now = dt.datetime.now(dt.timezone.utc)
    return SubscriptionEvent.from_json({
        "event": {
            "type": event_type,
            "marketplace": {"partner": "Q2TOTALACCESS", "baseUrl": "https://testq2totalaccess.appdirect.com"},
            "creator": {"uuid": str(uuid.uuid4()), "email": "jdoe@q2ebanking.com", "firstName": "John"},
            "payload": payload,
        },
        "event_type": event_type,
        "user_id": user_id,
        "subscription_id": subscription_id,
        "sso_user_id": str(uuid.uuid4()),
        "product_identifier": product_identifier,
        "extension_url": "https://fi.example/marketplace/budget_helper",
        "extension_name": "BudgetHelperMarketplace",
        "created": now.isoformat(),
        "processed": now.isoformat(),
        "fi_name": FI,
    })


def new_subscription() -> str:
    return str(uuid.uuid4())
