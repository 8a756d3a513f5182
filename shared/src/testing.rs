//! One way to build the functions for a test, a benchmark or an example:
//! [`TestApp`], in the spirit of zero2prod's `spawn_app`. Each test states
//! only what it cares about (a secret, a config, a store, a clock); the rest
//! are sensible defaults — the checked-in example config, no secrets, a fresh
//! in-memory SQLite store, a fixed clock.
//!
//! Compiled for this crate's tests and with the `test-support` feature
//! (tests, benches, examples); never in the Lambda binaries.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test support (feature `test-support`): a failed setup should stop the test, and it is never in a Lambda build"
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use crate::api::auth::Authenticator;
use crate::clock::{Clock, FixedClock, SystemClock};
use crate::config::Catalog;
use crate::functions::entitlement_check::EntitlementCheck;
use crate::functions::oauth_callback::OauthCallback;
use crate::functions::pubsub_push::PubsubPush;
use crate::functions::purchase_webhook::PurchaseWebhook;
use crate::secret::Secrets;
use crate::settings::{Settings, SetupError};
use crate::setup::Deps;
use crate::store::Store;
use crate::store::sqlite::SqliteStore;

/// The example configuration shipped with the repository.
pub const EXAMPLE_CONFIG: &str = include_str!("../../tollgate.example.toml");

/// The instant a [`TestApp`]'s clock starts at unless told otherwise.
pub fn default_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 15, 12, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Builds the shared dependencies and any of the functions on them.
pub struct TestApp {
    config: String,
    config_path: PathBuf,
    secrets: Vec<(String, String)>,
    settings: Vec<(String, String)>,
    store: Option<Arc<dyn Store>>,
    /// The clock tests move; `None` after [`TestApp::system_clock`].
    clock: Option<Arc<FixedClock>>,
}

impl Default for TestApp {
    fn default() -> Self {
        Self::new()
    }
}

impl TestApp {
    pub fn new() -> Self {
        Self {
            config: EXAMPLE_CONFIG.to_owned(),
            config_path: PathBuf::from("tollgate.toml"),
            secrets: Vec::new(),
            settings: Vec::new(),
            store: None,
            clock: Some(Arc::new(FixedClock::new(default_now()))),
        }
    }

    /// `tollgate.toml` as text (named `tollgate.toml` in errors).
    pub fn config(mut self, text: &str) -> Self {
        text.clone_into(&mut self.config);
        self
    }

    /// `tollgate.toml` read from a file.
    pub fn config_file(mut self, path: &Path) -> Self {
        self.config = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("test config {}: {e}", path.display()));
        self.config_path = path.to_owned();
        self
    }

    pub fn secret(mut self, name: &str, value: &str) -> Self {
        self.secrets.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A setting as if it were in the environment (`TOLLGATE_GITHUB_URL`, ...).
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Several settings at once, e.g. a stand-in's `tollgate_settings`; as
    /// with [`TestApp::setting`], a later value for a name wins.
    pub fn settings<N: AsRef<str>, V: AsRef<str>>(
        mut self,
        settings: impl IntoIterator<Item = (N, V)>,
    ) -> Self {
        self.settings.extend(
            settings
                .into_iter()
                .map(|(n, v)| (n.as_ref().to_owned(), v.as_ref().to_owned())),
        );
        self
    }

    /// The store to use instead of a fresh in-memory SQLite one.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The clock the functions read; tests move it with [`FixedClock::set`].
    pub fn clock(mut self, clock: Arc<FixedClock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Starts the fixed clock at `at`.
    pub fn now(mut self, at: DateTime<Utc>) -> Self {
        self.fixed_clock().set(at);
        self
    }

    /// The real clock, for end-to-end runs whose events happen "now".
    pub fn system_clock(mut self) -> Self {
        self.clock = None;
        self
    }

    /// The fixed clock; a fresh one at [`default_now`] after
    /// [`TestApp::system_clock`] switched it off.
    pub fn fixed_clock(&mut self) -> Arc<FixedClock> {
        Arc::clone(
            self.clock
                .get_or_insert_with(|| Arc::new(FixedClock::new(default_now()))),
        )
    }

    fn clock_dyn(&self) -> Arc<dyn Clock> {
        match &self.clock {
            Some(fixed) => fixed.clone(),
            None => Arc::new(SystemClock),
        }
    }

    /// The dependencies every function is built from. Panics on a bad test
    /// config: that is the test's own mistake.
    pub fn deps(&self) -> Deps {
        let settings = Settings::from_lookup(|k| {
            self.settings
                .iter()
                .rev()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        });
        // A `branding.logo` is read beside the config file, as at cold start.
        let catalog =
            Catalog::parse_with_files(&self.config, &self.config_path, &|p| std::fs::read(p))
                .unwrap_or_else(|e| panic!("test config: {e}"));
        let store = match &self.store {
            Some(store) => Arc::clone(store),
            None => Arc::new(
                SqliteStore::open_in_memory().unwrap_or_else(|e| panic!("in-memory store: {e}")),
            ),
        };
        Deps {
            settings,
            catalog: Arc::new(catalog),
            secrets: Arc::new(Secrets::from_pairs(
                self.secrets.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            )),
            store,
        }
    }

    pub fn purchase_webhook(&self) -> Result<PurchaseWebhook, SetupError> {
        Ok(PurchaseWebhook::new(self.deps())?.with_clock(self.clock_dyn()))
    }

    pub fn entitlement_check(&self, auth: Authenticator) -> EntitlementCheck {
        EntitlementCheck::new(&self.deps(), auth, self.clock_dyn())
    }

    /// entitlement-check with the auth policy its settings and secrets give
    /// (as at cold start in Lambda), on the test clock.
    pub fn entitlement_check_configured(&self) -> Result<EntitlementCheck, SetupError> {
        EntitlementCheck::configured(self.deps(), self.clock_dyn())
    }

    pub fn pubsub_push(&self) -> Result<PubsubPush, SetupError> {
        PubsubPush::new(&self.deps(), self.clock_dyn())
    }

    pub fn oauth_callback(&self) -> Result<OauthCallback, SetupError> {
        OauthCallback::with_clock(self.deps(), self.clock_dyn())
    }
}
