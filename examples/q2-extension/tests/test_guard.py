"""The entitlement client and the handler guard against real Tollgate
functions: a user is let into an extension exactly while subscribed to it."""

import unittest

from tests.support import PRODUCT, FI, check_url, event, new_subscription, new_user, signing_secret, tollgate_url
from tollgate_q2.entitlement import EntitlementClient, EntitlementUnavailable, TollgateMarketplaceMixin
from tollgate_q2.relay import TollgateRelay


class FakeRequestHandler:
    """The bits of a Tornado RequestHandler the guard uses."""

    def __init__(self):
        self.status = 200
        self.body = None
        self.served = False

    def set_status(self, status):
        self.status = status

    def finish(self, body=None):
        self.body = body

    def get(self):
        self.served = True


class ReportsPage(TollgateMarketplaceMixin, FakeRequestHandler):
    tollgate_product = PRODUCT
    tollgate_extension = "BudgetHelperReports"

    def __init__(self, client, user):
        super().__init__()
        self.tollgate_client = client
        self.user = user

    def tollgate_subject(self):
        return FI, self.user


def visit(page):
    """What Tornado does: prepare(), then get() unless prepare finished it."""
    page.prepare()
    if page.body is None:
        page.get()
    return page


class Guard(unittest.TestCase):
    def setUp(self):
        self.client = EntitlementClient(check_url())
        self.relay = TollgateRelay(tollgate_url(), signing_secret())

    def test_the_check_answers_per_extension(self):
        user, sub = new_user(), new_subscription()
        self.assertFalse(self.client.check(FI, user, PRODUCT, "BudgetHelper").allowed)
        self.relay.subscribe(event("SUBSCRIPTION_ORDER", sub, user, "STANDARD"))
        self.assertTrue(self.client.check(FI, user, PRODUCT, "BudgetHelper").allowed)
        reports = self.client.check(FI, user, PRODUCT, "BudgetHelperReports")
        self.assertEqual((reports.allowed, reports.reason), (False, "feature_not_in_plan"))

    def test_a_user_without_a_subscription_is_refused_and_a_subscriber_let_in(self):
        user, sub = new_user(), new_subscription()
        page = visit(ReportsPage(self.client, user))
        self.assertEqual((page.status, page.served), (402, False))
        self.assertEqual(page.body["error"]["code"], "no_subscription")

        self.relay.subscribe(event("SUBSCRIPTION_ORDER", sub, user, "PREMIUM"))
        page = visit(ReportsPage(self.client, user))
        self.assertEqual((page.status, page.served), (200, True))
        self.assertEqual(page.tollgate_decision.answer["tier"], "premium")

        # A downgrade to an edition without the extension closes it again.
        self.relay.update(event("SUBSCRIPTION_CHANGE", sub, user, "STANDARD"))
        page = visit(ReportsPage(self.client, user))
        self.assertEqual((page.status, page.served), (402, False))
        self.assertEqual(page.body["error"]["code"], "feature_not_in_plan")

    def test_an_unreachable_tollgate_refuses_the_request(self):
        client = EntitlementClient("http://127.0.0.1:9")
        with self.assertRaises(EntitlementUnavailable):
            client.check(FI, 1, PRODUCT)
        page = visit(ReportsPage(client, new_user()))
        self.assertEqual((page.status, page.served), (503, False))
        self.assertEqual(page.body["error"]["code"], "entitlement_unavailable")


if __name__ == "__main__":
    unittest.main()
