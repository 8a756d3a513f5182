"""Tollgate for Q2 extensions.

- ``tollgate_q2.relay``: forwards the marketplace's ``SubscriptionEvent`` from
  the extension's ``subscribe``/``update``/``cancel`` to Tollgate's
  ``POST /q2``, signed, and turns Tollgate's answer into the SDK's
  ``SubscriptionSuccess``/``SubscriptionFailure``.
- ``tollgate_q2.entitlement``: a small client for Tollgate's ``/v1/check`` and
  a guard for request handlers that refuses a user without an active
  subscription to the extension's product (what Q2's ``Q2MarketplaceMixin``
  does for Q2-hosted entitlements).

Standard library only.
"""
