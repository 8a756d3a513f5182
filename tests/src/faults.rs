//! Fault injection for the store: [`FaultyStore`] answers like the store
//! inside it, except at one chosen call, where it fails, fails after the
//! call took effect (the reply was lost), hangs, or hangs after the call
//! took effect. Tests sweep the fault over every call a delivery makes
//! ([`FaultyStore::calls`] of a clean run says how many), then recover
//! (replay, a redelivery) and check that nothing was lost or doubled.
//!
//! Calls are numbered from 0 in the order they are *started*, across every
//! role, so "call N" is well defined for a sequential run.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tollgate::model::{AppUser, CustomerKey, LogEntry, Marketplace, Subscription, SubscriptionKey};
use tollgate::store::{
    Commit, Commits, Deliveries, Delivery, Enrolled, Enrollment, Enrollments, GroupKey, Inventory,
    KeyPage, Recorded, SeatClaim, SeatClaims, SeatLimit, Store, StoreError, Subscriptions, Token,
    Tokens, UserLinks,
};

/// What happens at the armed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Refused before reaching the store: a transient error (throttling).
    Fail,
    /// Refused before reaching the store: a backend error (a missing table).
    Backend,
    /// The call takes effect, then its answer is lost: a transient error
    /// although the write happened (a timeout after the commit).
    FailAfter,
    /// Never answers, and never reaches the store.
    Hang,
    /// Takes effect, then never answers.
    HangAfter,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::Fail,
        Fault::Backend,
        Fault::FailAfter,
        Fault::Hang,
        Fault::HangAfter,
    ];

    /// Whether the call reached the store despite the fault.
    pub fn took_effect(self) -> bool {
        matches!(self, Fault::FailAfter | Fault::HangAfter)
    }
}

/// A store that fails at one chosen call. See the module docs.
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    next: AtomicUsize,
    /// `(call index, fault)`; `None`: every call passes through.
    armed: Mutex<Option<(usize, Fault)>>,
    /// Names of the calls made, in order.
    calls: Mutex<Vec<&'static str>>,
    /// Set once the armed fault fired.
    fired: AtomicBool,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            next: AtomicUsize::new(0),
            armed: Mutex::new(None),
            calls: Mutex::new(Vec::new()),
            fired: AtomicBool::new(false),
        })
    }

    /// The store without faults.
    pub fn inner(&self) -> Arc<dyn Store> {
        Arc::clone(&self.inner)
    }

    /// Makes call number `at` (counted from now) fail with `fault`.
    pub fn arm(&self, at: usize, fault: Fault) {
        self.next.store(0, Ordering::SeqCst);
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.fired.store(false, Ordering::SeqCst);
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = Some((at, fault));
    }

    /// Every call passes through from now on (calls are still counted).
    pub fn disarm(&self) {
        *self.armed.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Whether the armed fault fired (the run made enough calls).
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// The calls made since the last [`FaultyStore::arm`], by name.
    pub fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    async fn call<T>(
        &self,
        name: &'static str,
        work: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name);
        let armed = *self.armed.lock().unwrap_or_else(|e| e.into_inner());
        let fault = match armed {
            Some((at, fault)) if at == n => fault,
            _ => return work.await,
        };
        self.fired.store(true, Ordering::SeqCst);
        let injected = || StoreError::Transient(format!("injected fault at call {n} ({name})"));
        match fault {
            Fault::Fail => Err(injected()),
            Fault::Backend => Err(StoreError::Backend(format!(
                "injected fault at call {n} ({name})"
            ))),
            Fault::FailAfter => {
                let _ = work.await;
                Err(injected())
            }
            Fault::Hang => std::future::pending().await,
            Fault::HangAfter => {
                let _ = work.await;
                std::future::pending().await
            }
        }
    }
}

#[async_trait]
impl Subscriptions for FaultyStore {
    async fn get(&self, key: &SubscriptionKey) -> Result<Option<Subscription>, StoreError> {
        self.call("get", self.inner.get(key)).await
    }
    async fn log(&self, key: &SubscriptionKey) -> Result<Vec<LogEntry>, StoreError> {
        self.call("log", self.inner.log(key)).await
    }
    async fn customer_subscriptions(
        &self,
        customer: &CustomerKey,
    ) -> Result<Vec<Subscription>, StoreError> {
        self.call(
            "customer_subscriptions",
            self.inner.customer_subscriptions(customer),
        )
        .await
    }
}

#[async_trait]
impl Commits for FaultyStore {
    async fn commit(&self, commit: &Commit) -> Result<(), StoreError> {
        self.call("commit", self.inner.commit(commit)).await
    }
}

#[async_trait]
impl Deliveries for FaultyStore {
    async fn record_delivery(&self, delivery: &Delivery) -> Result<Recorded, StoreError> {
        self.call("record_delivery", self.inner.record_delivery(delivery))
            .await
    }
    async fn delivery(
        &self,
        marketplace: Marketplace,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Delivery>, StoreError> {
        self.call("delivery", self.inner.delivery(marketplace, id, now))
            .await
    }
    async fn pending_deliveries(
        &self,
        marketplace: Marketplace,
        now: DateTime<Utc>,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.call(
            "pending_deliveries",
            self.inner.pending_deliveries(marketplace, now),
        )
        .await
    }
}

#[async_trait]
impl SeatClaims for FaultyStore {
    async fn claim_seat(
        &self,
        key: &SubscriptionKey,
        user: &str,
        limit: SeatLimit,
    ) -> Result<SeatClaim, StoreError> {
        self.call("claim_seat", self.inner.claim_seat(key, user, limit))
            .await
    }
    async fn release_seat(&self, key: &SubscriptionKey, user: &str) -> Result<bool, StoreError> {
        self.call("release_seat", self.inner.release_seat(key, user))
            .await
    }
    async fn holds_seat(&self, key: &SubscriptionKey, user: &str) -> Result<bool, StoreError> {
        self.call("holds_seat", self.inner.holds_seat(key, user))
            .await
    }
    async fn seat_holders(&self, key: &SubscriptionKey) -> Result<Vec<String>, StoreError> {
        self.call("seat_holders", self.inner.seat_holders(key))
            .await
    }
}

#[async_trait]
impl Inventory for FaultyStore {
    async fn subscription_keys(
        &self,
        marketplace: Marketplace,
        cursor: Option<&str>,
    ) -> Result<KeyPage, StoreError> {
        self.call(
            "subscription_keys",
            self.inner.subscription_keys(marketplace, cursor),
        )
        .await
    }
}

#[async_trait]
impl Tokens for FaultyStore {
    async fn put_token(&self, token: &Token, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.call("put_token", self.inner.put_token(token, now))
            .await
    }
    async fn peek_token(
        &self,
        kind: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        self.call("peek_token", self.inner.peek_token(kind, id, now))
            .await
    }
    async fn take_token(
        &self,
        kind: &str,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        self.call("take_token", self.inner.take_token(kind, id, now))
            .await
    }
}

#[async_trait]
impl UserLinks for FaultyStore {
    async fn link_user(
        &self,
        user: &AppUser,
        link: &tollgate::store::UserLink,
    ) -> Result<(), StoreError> {
        self.call("link_user", self.inner.link_user(user, link))
            .await
    }
    async fn replace_links(
        &self,
        user: &AppUser,
        marketplace: Marketplace,
        links: &[tollgate::store::UserLink],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.call(
            "replace_links",
            self.inner.replace_links(user, marketplace, links, now),
        )
        .await
    }
    async fn user_links(
        &self,
        user: &AppUser,
        now: DateTime<Utc>,
    ) -> Result<Vec<tollgate::store::UserLink>, StoreError> {
        self.call("user_links", self.inner.user_links(user, now))
            .await
    }
    async fn unlink_user(
        &self,
        user: &AppUser,
        customer: &CustomerKey,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.call("unlink_user", self.inner.unlink_user(user, customer, now))
            .await
    }
}

#[async_trait]
impl Enrollments for FaultyStore {
    async fn enroll(
        &self,
        group: &GroupKey,
        member: &str,
        subscription: &str,
        cap: Option<u32>,
        now: DateTime<Utc>,
    ) -> Result<Enrolled, StoreError> {
        self.call(
            "enroll",
            self.inner.enroll(group, member, subscription, cap, now),
        )
        .await
    }
    async fn enrollment(
        &self,
        group: &GroupKey,
        member: &str,
    ) -> Result<Option<Enrollment>, StoreError> {
        self.call("enrollment", self.inner.enrollment(group, member))
            .await
    }
    async fn enrollments(&self, group: &GroupKey) -> Result<Vec<Enrollment>, StoreError> {
        self.call("enrollments", self.inner.enrollments(group))
            .await
    }
    async fn transfer_enrollment(
        &self,
        group: &GroupKey,
        member: &str,
        from: &str,
        to: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.call(
            "transfer_enrollment",
            self.inner.transfer_enrollment(group, member, from, to, now),
        )
        .await
    }
    async fn unenroll(
        &self,
        group: &GroupKey,
        member: &str,
        subscription: &str,
    ) -> Result<bool, StoreError> {
        self.call("unenroll", self.inner.unenroll(group, member, subscription))
            .await
    }
}
