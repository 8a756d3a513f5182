"""The relay's own rules, without a network: the signature, the body, and
how every kind of answer (or none) becomes the SDK's result."""

import datetime as dt
import hashlib
import hmac
import io
import json
import unittest
import urllib.error

from q2_marketplace.models.marketplace import ErrorCode, SubscriptionEvent, SubscriptionFailure, SubscriptionSuccess

from tests.support import event
from tollgate_q2.relay import TollgateRelay, event_json, sign


class FakeResponse(io.BytesIO):
    def __init__(self, status, body):
        super().__init__(body)
        self.status = status


def relay_answering(status, body, seen=None):
    def urlopen(request, timeout):
        if seen is not None:
            seen.append(request)
        if status >= 400:
            raise urllib.error.HTTPError(request.full_url, status, "x", {}, io.BytesIO(body))
        return FakeResponse(status, body)
    return TollgateRelay("http://tollgate.test/", "s3cret", clock=lambda: 1714572191.9, urlopen=urlopen)


def answer(**fields):
    return json.dumps(fields).encode()


class Relay(unittest.TestCase):
    def test_the_request_is_the_event_json_signed_over_timestamp_dot_body(self):
        seen = []
        e = event("SUBSCRIPTION_ORDER", "sub-1", 42, "PREMIUM")
        relay_answering(200, answer(success=True, message="ok", accountIdentifier="sub-1"), seen).subscribe(e)
        (request,) = seen
        self.assertEqual(request.full_url, "http://tollgate.test/q2")
        self.assertEqual(request.get_header("Content-type"), "application/json")
        body = request.data
        expected = hmac.new(b"s3cret", b"1714572191." + body, hashlib.sha256).hexdigest()
        self.assertEqual(request.get_header("Tollgate-signature"), f"t=1714572191,v1={expected}")
        sent = json.loads(body)
        self.assertEqual(sent["subscription_id"], "sub-1")
        self.assertEqual(sent["user_id"], 42)
        self.assertEqual(sent["event"]["payload"]["order"]["editionCode"], "PREMIUM")
        self.assertEqual(dt.datetime.fromisoformat(sent["created"]), e.created)
        self.assertEqual(sign(b"k", 5, b"{}"), "t=5,v1=" + hmac.new(b"k", b"5.{}", hashlib.sha256).hexdigest())

    def test_every_published_field_is_sent_under_its_own_name(self):
        e = SubscriptionEvent({"type": "SUBSCRIPTION_CANCEL"}, "SUBSCRIPTION_CANCEL", 7, "s", "sso", "p", "u")
        self.assertEqual(set(json.loads(event_json(e))), {
            "event", "event_type", "user_id", "subscription_id", "sso_user_id", "product_identifier",
            "extension_url", "extension_name", "created", "processed", "fi_name"})

    def test_answers_become_success_or_the_named_failure(self):
        e = event("SUBSCRIPTION_CANCEL", "sub-1", 42)
        ok = relay_answering(200, answer(success=True, message="cancelled", accountIdentifier="sub-1")).cancel(e)
        self.assertIsInstance(ok, SubscriptionSuccess)
        self.assertEqual(ok.account_identifier, "sub-1")
        veto = relay_answering(200, answer(success=False, errorCode="DO_NOT_CANCEL", message="term")).cancel(e)
        self.assertEqual((veto.error_code, veto.message), (ErrorCode.DO_NOT_CANCEL, "term"))
        old = relay_answering(200, answer(success=False, errorCode="OPERATION_CANCELED", message="")).cancel(e)
        self.assertIs(old.error_code, ErrorCode.OPERATION_CANCELLED)
        new = relay_answering(200, answer(success=False, errorCode="SOMETHING_NEW", message="")).cancel(e)
        self.assertIs(new.error_code, ErrorCode.UNKNOWN_ERROR)
        pending = relay_answering(202, answer(success=True, message="later")).subscribe(e)
        self.assertIs(pending.error_code, ErrorCode.PENDING)

    def test_anything_but_an_answer_is_a_failure_never_a_success(self):
        e = event("SUBSCRIPTION_ORDER", "sub-1", 42, "PREMIUM")
        cases = [
            (200, b"<html>proxy</html>", ErrorCode.UNKNOWN_ERROR),
            (200, answer(ok=True), ErrorCode.UNKNOWN_ERROR),
            (401, answer(error={"code": "signature_expired", "message": "clock"}), ErrorCode.CONFIGURATION_ERROR),
            (503, answer(error={"code": "not_configured", "message": "no secret"}), ErrorCode.CONFIGURATION_ERROR),
            (413, b"", ErrorCode.INVALID_RESPONSE),
            (500, b"", ErrorCode.UNKNOWN_ERROR),
        ]
        for status, body, code in cases:
            with self.subTest(status=status, body=body):
                with self.assertLogs("tollgate_q2", "ERROR"):
                    result = relay_answering(status, body).subscribe(e)
                self.assertIsInstance(result, SubscriptionFailure)
                self.assertIs(result.error_code, code)

    def test_the_secret_is_never_shown(self):
        relay = relay_answering(200, b"")
        self.assertNotIn("s3cret", repr(relay))
        with self.assertRaises(ValueError):
            TollgateRelay("http://x", "")


if __name__ == "__main__":
    unittest.main()
