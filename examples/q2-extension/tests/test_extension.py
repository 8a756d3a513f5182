"""The marketplace handler against real Tollgate functions: each of Q2's
calls forwarded, signed, and Tollgate's answer turned into the SDK's result."""

import unittest

from q2_marketplace.models.marketplace import ErrorCode, SubscriptionFailure, SubscriptionSuccess

from marketplace.budget_helper.extension import BudgetHelperMarketplaceHandler
from tests.support import event, new_subscription, new_user, signing_secret, tollgate_url
from tollgate_q2.relay import TollgateRelay


def handler(secret=None, url=None) -> BudgetHelperMarketplaceHandler:
    h = BudgetHelperMarketplaceHandler()
    h.tollgate_relay = TollgateRelay(url or tollgate_url(), secret or signing_secret())
    return h


class MarketplaceHandler(unittest.TestCase):
    def test_subscribe_update_and_cancel_succeed_with_the_subscription_as_account(self):
        h, sub, user = handler(), new_subscription(), new_user()
        ordered = h.subscribe(event("SUBSCRIPTION_ORDER", sub, user, "PREMIUM"))
        self.assertIsInstance(ordered, SubscriptionSuccess, ordered)
        self.assertEqual(ordered.account_identifier, sub)
        changed = h.update(event("SUBSCRIPTION_CHANGE", sub, user, "STANDARD"))
        self.assertIsInstance(changed, SubscriptionSuccess, changed)
        cancelled = h.cancel(event("SUBSCRIPTION_CANCEL", sub, user))
        self.assertIsInstance(cancelled, SubscriptionSuccess, cancelled)

    def test_a_second_subscription_of_a_user_fails_with_user_already_exists(self):
        h, user = handler(), new_user()
        self.assertIsInstance(h.subscribe(event("SUBSCRIPTION_ORDER", new_subscription(), user, "PREMIUM")),
                              SubscriptionSuccess)
        second = h.subscribe(event("SUBSCRIPTION_ORDER", new_subscription(), user, "PREMIUM"))
        self.assertIsInstance(second, SubscriptionFailure, second)
        self.assertIs(second.error_code, ErrorCode.USER_ALREADY_EXISTS)

    def test_tollgates_refusals_arrive_as_the_sdks_error_codes(self):
        h, user = handler(), new_user()
        unknown_product = h.subscribe(event("SUBSCRIPTION_ORDER", new_subscription(), user, "PREMIUM",
                                            product_identifier="not-configured"))
        self.assertIs(unknown_product.error_code, ErrorCode.CONFIGURATION_ERROR)
        unknown_user = h.update(event("SUBSCRIPTION_CHANGE", new_subscription(), new_user(), "STANDARD"))
        self.assertIs(unknown_user.error_code, ErrorCode.USER_NOT_FOUND)

    def test_a_wrong_secret_is_a_configuration_error_never_a_success(self):
        result = handler(secret="not-the-shared-secret").subscribe(
            event("SUBSCRIPTION_ORDER", new_subscription(), new_user(), "PREMIUM"))
        self.assertIsInstance(result, SubscriptionFailure, result)
        self.assertIs(result.error_code, ErrorCode.CONFIGURATION_ERROR)
        self.assertIn("401", result.message)

    def test_an_unreachable_tollgate_is_a_transport_error_and_never_blocks_a_cancel(self):
        # Port 9 (discard) on localhost: nothing listens there.
        h, sub, user = handler(url="http://127.0.0.1:9"), new_subscription(), new_user()
        for call, e in [(h.subscribe, event("SUBSCRIPTION_ORDER", sub, user, "PREMIUM")),
                        (h.update, event("SUBSCRIPTION_CHANGE", sub, user, "STANDARD")),
                        (h.cancel, event("SUBSCRIPTION_CANCEL", sub, user))]:
            with self.assertLogs("tollgate_q2", "ERROR"):
                result = call(e)
            self.assertIsInstance(result, SubscriptionFailure, result)
            self.assertIs(result.error_code, ErrorCode.TRANSPORT_ERROR)
            self.assertIsNot(result.error_code, ErrorCode.DO_NOT_CANCEL)


if __name__ == "__main__":
    unittest.main()
