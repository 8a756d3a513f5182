"""Budget Helper's marketplace handler: the file `q2 create_marketplace_product
budget_helper` generates at marketplace/budget_helper/extension.py, with its
three methods forwarding each SubscriptionEvent to Tollgate.

Configure the extension's environment:
  TOLLGATE_URL                 purchase-webhook's URL (Tollgate appends /q2)
  TOLLGATE_Q2_SIGNING_SECRET   the same value as Tollgate's q2_signing_secret

Q2 waits for each answer and acts on it: SubscriptionSuccess completes the
subscription, SubscriptionFailure(ErrorCode...) refuses it (a cancel goes
through unless the code is DO_NOT_CANCEL).
"""

from q2_marketplace.models.marketplace import SubscriptionEvent

from tollgate_q2.relay import TollgateSubscriptionHandler


class BudgetHelperMarketplaceHandler(TollgateSubscriptionHandler):
    """Keep the base class the generator wrote first in the class list."""

    def subscribe(self, event: SubscriptionEvent):
        return super().subscribe(event)

    def update(self, event: SubscriptionEvent):
        return super().update(event)

    def cancel(self, event: SubscriptionEvent):
        return super().cancel(event)
