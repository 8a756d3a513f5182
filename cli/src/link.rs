//! `tollgate link list APP_USER` and `tollgate link remove APP_USER
//! --marketplace M CUSTOMER`: the links from an app user to the customers
//! it is entitled through, for an operator (a user who left a customer's
//! organization, a support request).
//!
//! Links are written at GitHub sign-in (replaced by what GitHub lists then)
//! and Google sign-up, and expire after `TOLLGATE_LINK_TTL` unless a
//! sign-in renews them; `list` shows the live ones, `remove` deletes one at
//! once (what `DELETE /v1/links/...` does). Both read the store named by
//! `TOLLGATE_STORE` (through `Deps::from_env`, like `status`). Text by
//! default, one JSON object with `--json`; either ends with a one-line
//! summary.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use tollgate::clock::{Clock, SystemClock};
use tollgate::model::{AppUser, CustomerKey};
use tollgate::setup::Deps;
use tollgate::store::{StoreError, UserLink, UserLinks};

use crate::args::{self, Json};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List an app user's live links (exit 0, even when there are none)
    #[command(after_help = AFTER_HELP)]
    List {
        /// The app user, as in `/v1/check`: `github:<user id>`, `google:<user identity>`
        #[arg(value_name = "APP_USER")]
        app_user: String,
        #[command(flatten)]
        json: Json,
    },
    /// Remove an app user's link to a customer (exit 1 if there was no live link)
    #[command(after_help = AFTER_HELP)]
    Remove {
        /// The app user, as in `/v1/check`
        #[arg(value_name = "APP_USER")]
        app_user: String,
        /// The customer's marketplace
        #[arg(long, value_enum)]
        marketplace: args::Marketplace,
        /// The marketplace's customer id (GitHub account id, Google procurement account id)
        #[arg(value_name = "CUSTOMER")]
        customer: String,
        #[command(flatten)]
        json: Json,
    },
}

const AFTER_HELP: &str = "Exits 0 on success, 1 when `remove` found no live link or the store \
cannot be read,\n2 on a usage error. Reads TOLLGATE_CONFIG, TOLLGATE_STORE and TOLLGATE_SECRETS.";

pub async fn run(command: Command) -> Result<(), String> {
    let deps = Deps::from_env().await.map_err(|e| e.to_string())?;
    let now = SystemClock.now();
    match command {
        Command::List { app_user, json } => {
            let report = list(&*deps.store, AppUser(app_user), now)
                .await
                .map_err(|e| e.to_string())?;
            print(&report.to_json(), &report.to_text(), json);
            Ok(())
        }
        Command::Remove {
            app_user,
            marketplace,
            customer,
            json,
        } => {
            let customer = CustomerKey::new(marketplace.into(), customer);
            let removal = remove(&*deps.store, AppUser(app_user), customer, now)
                .await
                .map_err(|e| e.to_string())?;
            print(
                &removal.to_json(),
                &format!("{}\n", removal.summary()),
                json,
            );
            removal.outcome()
        }
    }
}

fn print(json_form: &Value, text: &str, json: Json) {
    if json.json {
        println!("{json_form}");
    } else {
        print!("{text}");
    }
}

/// An app user's live links.
#[derive(Debug)]
pub struct Listing {
    pub user: AppUser,
    pub now: DateTime<Utc>,
    pub links: Vec<UserLink>,
}

pub async fn list(
    links: &dyn UserLinks,
    user: AppUser,
    now: DateTime<Utc>,
) -> Result<Listing, StoreError> {
    Ok(Listing {
        links: links.user_links(&user, now).await?,
        user,
        now,
    })
}

impl Listing {
    pub fn summary(&self) -> String {
        match self.links.len() {
            0 => format!("{}: no live links", self.user.0),
            1 => format!("{}: 1 live link", self.user.0),
            n => format!("{}: {n} live links", self.user.0),
        }
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for l in &self.links {
            out.push_str(&format!(
                "{}  linked {}  expires {} (in {})\n",
                l.customer,
                time(l.linked_at),
                time(l.expires_at),
                age(l.expires_at - self.now)
            ));
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    pub fn to_json(&self) -> Value {
        let links: Vec<Value> = self
            .links
            .iter()
            .map(|l| {
                json!({
                    "marketplace": l.customer.marketplace,
                    "customer_id": l.customer.id,
                    "linked_at": time(l.linked_at),
                    "expires_at": time(l.expires_at),
                })
            })
            .collect();
        json!({
            "app_user": self.user.0,
            "now": time(self.now),
            "links": links,
            "summary": self.summary(),
        })
    }
}

/// What `remove` did.
#[derive(Debug)]
pub struct Removal {
    pub user: AppUser,
    pub customer: CustomerKey,
    /// A live link was removed.
    pub removed: bool,
}

pub async fn remove(
    links: &dyn UserLinks,
    user: AppUser,
    customer: CustomerKey,
    now: DateTime<Utc>,
) -> Result<Removal, StoreError> {
    Ok(Removal {
        removed: links.unlink_user(&user, &customer, now).await?,
        user,
        customer,
    })
}

impl Removal {
    pub fn summary(&self) -> String {
        if self.removed {
            format!("removed the link from {} to {}", self.user.0, self.customer)
        } else {
            format!("no live link from {} to {}", self.user.0, self.customer)
        }
    }

    /// Exit 1 when there was nothing to remove, so a script notices a typo.
    pub fn outcome(&self) -> Result<(), String> {
        if self.removed {
            Ok(())
        } else {
            Err(self.summary())
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "app_user": self.user.0,
            "customer": {"marketplace": self.customer.marketplace, "id": self.customer.id},
            "removed": self.removed,
            "summary": self.summary(),
        })
    }
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `45s`, `12m30s`, `3h05m`, `29d23h`.
fn age(d: chrono::TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}
