//! `tollgate.toml`: which products are sold, how each marketplace's plan ids
//! map to tiers, which features a tier grants, how seats are counted and what
//! a cancellation leaves behind.
//!
//! The file is read once at cold start. Any mistake fails loudly with the
//! file and the key, because a billing integration that silently
//! mis-maps a plan gives away (or withholds) paid features.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::Marketplace;

mod branding;
pub use branding::{
    AppUrl, Branding, BrandingConfig, Colour, Logo, MAX_APP_URL_LEN, MAX_LOGO_BYTES,
};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config file {path}: key `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

/// How many users may use a tier at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SeatPolicy {
    /// As many as the customer bought (per-unit plans); unlimited when the
    /// marketplace reports no unit count.
    #[default]
    Purchased,
    Unlimited,
    Fixed(u32),
}

impl<'de> Deserialize<'de> for SeatPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            Count(u32),
        }
        match Raw::deserialize(d)? {
            Raw::Word(w) if w == "purchased" => Ok(SeatPolicy::Purchased),
            Raw::Word(w) if w == "unlimited" => Ok(SeatPolicy::Unlimited),
            Raw::Word(w) => Err(serde::de::Error::custom(format!(
                "unknown seat policy `{w}` (expected \"purchased\", \"unlimited\" or a number)"
            ))),
            Raw::Count(n) => Ok(SeatPolicy::Fixed(n)),
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    #[serde(default)]
    pub features: BTreeSet<String>,
    #[serde(default)]
    pub seats: SeatPolicy,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Product {
    #[serde(default)]
    pub name: Option<String>,
    pub tiers: BTreeMap<String, Tier>,
    /// Marketplace plan id → tier, per marketplace.
    #[serde(default)]
    pub plans: BTreeMap<Marketplace, BTreeMap<String, String>>,
    /// Tier a customer keeps after the cancellation takes effect (GitHub asks
    /// vendors to fall back to their free plan). Without it, access ends.
    #[serde(default)]
    pub cancelled_tier: Option<String>,
    /// How the product is sold on Q2's marketplace, if it is.
    #[serde(default)]
    pub q2: Option<Q2Product>,
    /// How the product looks on the customer's pages, as written; the
    /// validated form is [`Catalog::branding`].
    #[serde(default)]
    branding: Option<BrandingConfig>,
}

/// A product on Q2's marketplace: what `q2 create_marketplace_product`
/// writes to the extension's `configuration/products.py` (the product's
/// identifier and the extensions it bundles; the name is the product's
/// `name`), and the vendor's rules for its subscriptions.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Q2Product {
    /// The generated identifier events name the product by.
    pub product_identifier: String,
    /// The extensions the product bundles. Each is a feature of the tiers
    /// that grant it, so an app asks `/v1/check` per extension.
    #[serde(default)]
    pub extensions: BTreeSet<String>,
    /// Users of one financial institution who may hold the product at
    /// once; unlimited when absent.
    #[serde(default)]
    pub max_users_per_institution: Option<u32>,
    /// A cancellation within this many days of the order is refused with
    /// `DO_NOT_CANCEL` (the only answer Q2 does not cancel through).
    #[serde(default)]
    pub minimum_term_days: u32,
    /// What a cancellation leaves the user.
    #[serde(default)]
    pub cancel_access: CancelAccess,
    /// The edition (plan id under `plans.q2`) of an event that names none.
    #[serde(default)]
    pub default_edition: Option<String>,
}

/// Access after a Q2 cancellation.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum CancelAccess {
    /// Until the end of the billing period already paid (Q2 bills monthly
    /// or yearly from the order date and does not refund the rest).
    #[default]
    EndOfPeriod,
    /// Access ends with the cancellation.
    Immediate,
}

/// Which product a marketplace's events belong to.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct MarketplaceProducts {
    /// Product for events that don't name one (a GitHub listing sells one app).
    #[serde(default)]
    pub product: Option<String>,
    /// Marketplace product id (Google's `product`, Q2's application) → product.
    #[serde(default)]
    pub products: BTreeMap<String, String>,
    /// Whether Tollgate approves orders and plan changes at the marketplace
    /// itself (Google; once the customer has signed up and when the plan is
    /// configured) or leaves them to the vendor.
    #[serde(default)]
    pub approval: ApprovalPolicy,
}

/// Who approves marketplace orders and plan changes.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalPolicy {
    /// Tollgate approves a configured plan as soon as it may.
    #[default]
    Automatic,
    /// Tollgate records the order and waits for the vendor.
    Manual,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct RawCatalog {
    products: BTreeMap<String, Product>,
    #[serde(default)]
    marketplaces: BTreeMap<Marketplace, MarketplaceProducts>,
    #[serde(default)]
    notifications: crate::notify::NotificationsConfig,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalog {
    products: BTreeMap<String, Product>,
    marketplaces: BTreeMap<Marketplace, MarketplaceProducts>,
    /// Validated `[products.<id>.branding]`, by product.
    branding: BTreeMap<String, Branding>,
    /// `[notifications]`: where applied changes are sent.
    notifications: crate::notify::NotificationsConfig,
}

/// What a plan id resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedTier<'a> {
    pub name: &'a str,
    pub tier: &'a Tier,
}

impl Catalog {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse_with_files(&text, path, &branding::read_logo_file)
    }

    /// Parses and validates; `path` only names the file in errors. Reads
    /// no file: a `logo` is refused here (it is read by [`Catalog::load`],
    /// or by [`Catalog::parse_with_files`] with the caller's reader).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        Self::parse_with_files(text, path, &|_| {
            Err(std::io::Error::other(
                "logo files are read only when the config is loaded from a file",
            ))
        })
    }

    /// [`Catalog::parse`], reading the files the config names (a product's
    /// `branding.logo`, relative to `path`'s directory) with `read_file`.
    pub fn parse_with_files(
        text: &str,
        path: &Path,
        read_file: &dyn Fn(&Path) -> std::io::Result<Vec<u8>>,
    ) -> Result<Self, ConfigError> {
        let raw: RawCatalog = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let invalid = |key: String, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message,
        };
        if raw.products.is_empty() {
            return Err(invalid(
                "products".into(),
                "at least one product is required".into(),
            ));
        }
        for (pid, product) in &raw.products {
            if product.tiers.is_empty() {
                return Err(invalid(
                    format!("products.{pid}.tiers"),
                    "at least one tier is required".into(),
                ));
            }
            for (mkt, plans) in &product.plans {
                for (plan, tier) in plans {
                    if !product.tiers.contains_key(tier) {
                        return Err(invalid(
                            format!("products.{pid}.plans.{mkt}.{plan}"),
                            format!(
                                "tier `{tier}` is not defined under products.{pid}.tiers ({})",
                                defined(product.tiers.keys())
                            ),
                        ));
                    }
                }
            }
            if let Some(tier) = &product.cancelled_tier
                && !product.tiers.contains_key(tier)
            {
                return Err(invalid(
                    format!("products.{pid}.cancelled_tier"),
                    format!(
                        "tier `{tier}` is not defined under products.{pid}.tiers ({})",
                        defined(product.tiers.keys())
                    ),
                ));
            }
        }
        for (mkt, m) in &raw.marketplaces {
            let named = m
                .product
                .iter()
                .map(|p| (format!("marketplaces.{mkt}.product"), p));
            let mapped = m
                .products
                .iter()
                .map(|(ext, p)| (format!("marketplaces.{mkt}.products.{ext}"), p));
            for (key, product) in named.chain(mapped) {
                if !raw.products.contains_key(product) {
                    return Err(invalid(
                        key,
                        format!(
                            "product `{product}` is not defined under products ({})",
                            defined(raw.products.keys())
                        ),
                    ));
                }
            }
        }
        check_q2(&raw).map_err(|(key, message)| invalid(key, message))?;
        let config_dir = path.parent().unwrap_or(Path::new(""));
        let mut branding = BTreeMap::new();
        for (pid, product) in &raw.products {
            if let Some(raw_branding) = &product.branding {
                let key = |field: &str| format!("products.{pid}.branding.{field}");
                let checked = branding::check(raw_branding, &key, config_dir, read_file)
                    .map_err(|(key, message)| invalid(key, message))?;
                branding.insert(pid.clone(), checked);
            }
        }
        Ok(Self {
            products: raw.products,
            marketplaces: raw.marketplaces,
            branding,
            notifications: raw.notifications,
        })
    }

    /// `[notifications]`: the endpoints applied changes are sent to.
    pub fn notifications(&self) -> &crate::notify::NotificationsConfig {
        &self.notifications
    }

    /// How `product` looks on the customer's pages (defaults when it has
    /// no `branding`).
    pub fn branding(&self, product: &str) -> Option<&Branding> {
        self.branding.get(product)
    }

    pub fn product(&self, id: &str) -> Option<&Product> {
        self.products.get(id)
    }

    pub fn products(&self) -> impl Iterator<Item = (&str, &Product)> {
        self.products.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The product an event of `marketplace` belongs to: the one mapped from the
    /// marketplace's own product id, else the marketplace's default product.
    pub fn product_for(&self, marketplace: Marketplace, external_id: Option<&str>) -> Option<&str> {
        let m = self.marketplaces.get(&marketplace)?;
        external_id
            .and_then(|ext| m.products.get(ext))
            .or(m.product.as_ref())
            .map(String::as_str)
    }

    /// Who approves `marketplace`'s orders and plan changes.
    pub fn approval(&self, marketplace: Marketplace) -> ApprovalPolicy {
        self.marketplaces
            .get(&marketplace)
            .map(|m| m.approval)
            .unwrap_or_default()
    }

    /// The tier a marketplace plan id maps to; `None` for an unknown plan.
    pub fn tier_for(
        &self,
        marketplace: Marketplace,
        product: &str,
        plan_id: &str,
    ) -> Option<ResolvedTier<'_>> {
        let product = self.products.get(product)?;
        let name = product.plans.get(&marketplace)?.get(plan_id)?;
        product
            .tiers
            .get(name)
            .map(|tier| ResolvedTier { name, tier })
    }

    /// The tier a customer keeps after cancellation, if the product has one.
    pub fn cancelled_tier(&self, product: &str) -> Option<ResolvedTier<'_>> {
        let product = self.products.get(product)?;
        let name = product.cancelled_tier.as_ref()?;
        product
            .tiers
            .get(name)
            .map(|tier| ResolvedTier { name, tier })
    }

    /// The product Q2 events name by `product_identifier`, with its Q2
    /// settings; `None` when no product has that identifier.
    pub fn q2_product(&self, product_identifier: &str) -> Option<(&str, &Q2Product)> {
        self.products.iter().find_map(|(id, p)| {
            p.q2.as_ref()
                .filter(|q2| q2.product_identifier == product_identifier)
                .map(|q2| (id.as_str(), q2))
        })
    }
}

/// The names a key could have named, for an error about one that is not
/// defined: "defined: `a`, `b`" (sorted, as the maps keep them), so a typo
/// is seen at a glance.
fn defined<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> String {
    let names: Vec<String> = names
        .into_iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect();
    if names.is_empty() {
        "none defined".into()
    } else {
        format!("defined: {}", names.join(", "))
    }
}

/// Q2 products: identifiers unique and non-empty, extensions granted by some
/// tier (a misspelt one would never be allowed), the default edition mapped.
/// Q2 events always name their product, so a marketplace-wide Q2 product
/// mapping would be a second, conflicting way to say the same thing.
fn check_q2(raw: &RawCatalog) -> Result<(), (String, String)> {
    if let Some(m) = raw.marketplaces.get(&Marketplace::Q2) {
        let key = if m.product.is_some() {
            Some("marketplaces.q2.product")
        } else if !m.products.is_empty() {
            Some("marketplaces.q2.products")
        } else {
            None
        };
        if let Some(key) = key {
            return Err((
                key.into(),
                "Q2 products are configured per product: set `product_identifier` under products.<product>.q2".into(),
            ));
        }
    }
    let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
    for (pid, product) in &raw.products {
        let Some(q2) = &product.q2 else { continue };
        let key = |field: &str| format!("products.{pid}.q2.{field}");
        if q2.product_identifier.trim().is_empty() {
            return Err((key("product_identifier"), "must not be empty".into()));
        }
        if let Some(other) = seen.insert(&q2.product_identifier, pid) {
            return Err((
                key("product_identifier"),
                format!(
                    "`{}` is also the identifier of products.{other}",
                    q2.product_identifier
                ),
            ));
        }
        for extension in &q2.extensions {
            if !product
                .tiers
                .values()
                .any(|t| t.features.contains(extension))
            {
                return Err((
                    key("extensions"),
                    format!(
                        "extension `{extension}` is not a feature of any tier under products.{pid}.tiers ({})",
                        defined(
                            product
                                .tiers
                                .values()
                                .flat_map(|t| &t.features)
                                .collect::<BTreeSet<_>>()
                        )
                    ),
                ));
            }
        }
        if let Some(edition) = &q2.default_edition {
            let mapped = product
                .plans
                .get(&Marketplace::Q2)
                .is_some_and(|plans| plans.contains_key(edition));
            if !mapped {
                return Err((
                    key("default_edition"),
                    format!(
                        "edition `{edition}` is not mapped under products.{pid}.plans.q2 ({})",
                        defined(
                            product
                                .plans
                                .get(&Marketplace::Q2)
                                .into_iter()
                                .flat_map(|p| p.keys())
                        )
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../tollgate.example.toml");

    fn parse(text: &str) -> Result<Catalog, ConfigError> {
        Catalog::parse(text, Path::new("tollgate.toml"))
    }

    #[test]
    fn the_checked_in_example_is_valid() {
        let catalog = parse(EXAMPLE).expect("tollgate.example.toml must parse");
        assert!(catalog.products().count() >= 1);
        assert!(catalog.product_for(Marketplace::Github, None).is_some());
    }

    #[test]
    fn plan_ids_map_to_tiers_per_marketplace() {
        let c = parse(
            r#"
            [products.ci.tiers.pro]
            features = ["private-repos"]
            seats = "purchased"
            [products.ci.plans.github]
            "9" = "pro"
            "#,
        )
        .unwrap();
        let t = c.tier_for(Marketplace::Github, "ci", "9").unwrap();
        assert_eq!(t.name, "pro");
        assert!(t.tier.features.contains("private-repos"));
        assert!(
            c.tier_for(Marketplace::Github, "ci", "10").is_none(),
            "unknown plan"
        );
        assert!(
            c.tier_for(Marketplace::Gcp, "ci", "9").is_none(),
            "plans are per marketplace"
        );
    }

    #[test]
    fn seat_policy_accepts_words_and_numbers() {
        let c = parse(
            r#"
            [products.p.tiers.a]
            seats = "unlimited"
            [products.p.tiers.b]
            seats = 5
            [products.p.tiers.c]
            "#,
        )
        .unwrap();
        let p = c.product("p").unwrap();
        assert_eq!(p.tiers["a"].seats, SeatPolicy::Unlimited);
        assert_eq!(p.tiers["b"].seats, SeatPolicy::Fixed(5));
        assert_eq!(p.tiers["c"].seats, SeatPolicy::Purchased);
    }

    #[test]
    fn a_plan_mapped_to_an_undefined_tier_names_the_key() {
        let err = parse(
            r#"
            [products.ci.tiers.pro]
            [products.ci.plans.github]
            "9" = "enterprise"
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("tollgate.toml"), "{err}");
        assert!(err.contains("products.ci.plans.github.9"), "{err}");
        assert!(err.contains("enterprise"), "{err}");
    }

    #[test]
    fn an_undefined_name_lists_the_names_that_are_defined() {
        let cases = [
            (
                "[products.ci.tiers.team]\n[products.ci.tiers.free]\n\
                 [products.ci.plans.github]\n\"1002\" = \"tean\"\n",
                "key `products.ci.plans.github.1002`: tier `tean` is not defined under \
                 products.ci.tiers (defined: `free`, `team`)",
            ),
            (
                "[products.ci]\ncancelled_tier = \"fre\"\n[products.ci.tiers.free]\n",
                "key `products.ci.cancelled_tier`: tier `fre` is not defined under \
                 products.ci.tiers (defined: `free`)",
            ),
            (
                "[products.ci.tiers.a]\n[products.docs.tiers.a]\n\
                 [marketplaces.gcp.products]\n\"x.goog\" = \"doc\"\n",
                "key `marketplaces.gcp.products.x.goog`: product `doc` is not defined under \
                 products (defined: `ci`, `docs`)",
            ),
            (
                &Q2_PRODUCT.replace(
                    r#"extensions = ["BudgetHelper", "BudgetReports"]"#,
                    r#"extensions = ["BudgetHelpr"]"#,
                ),
                "extension `BudgetHelpr` is not a feature of any tier under products.bh.tiers \
                 (defined: `BudgetHelper`, `BudgetReports`)",
            ),
            (
                &Q2_PRODUCT.replace(
                    r#"default_edition = "STANDARD""#,
                    r#"default_edition = "GOLD""#,
                ),
                "edition `GOLD` is not mapped under products.bh.plans.q2 \
                 (defined: `PREMIUM`, `STANDARD`)",
            ),
            (
                "[products.p.tiers.t]\n[products.p.q2]\nproduct_identifier = \"x\"\n\
                 default_edition = \"GOLD\"\n",
                "edition `GOLD` is not mapped under products.p.plans.q2 (none defined)",
            ),
        ];
        for (text, message) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.ends_with(message), "{err}");
        }
    }

    #[test]
    fn a_typo_in_a_key_names_file_and_key() {
        let err = parse(
            r#"
            [products.ci.tiers.pro]
            featurez = ["x"]
            "#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("tollgate.toml"), "{err}");
        assert!(err.contains("featurez"), "{err}");
    }

    #[test]
    fn a_bad_seat_policy_is_rejected() {
        let err = parse("[products.p.tiers.a]\nseats = \"lots\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lots"), "{err}");
    }

    #[test]
    fn an_undefined_cancelled_tier_or_marketplace_product_is_rejected() {
        let err =
            parse("[products.p]\ncancelled_tier = \"free\"\n[products.p.tiers.a]\n").unwrap_err();
        assert!(
            err.to_string().contains("products.p.cancelled_tier"),
            "{err}"
        );
        let err =
            parse("[products.p.tiers.a]\n[marketplaces.github]\nproduct = \"q\"\n").unwrap_err();
        assert!(
            err.to_string().contains("marketplaces.github.product"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let err = Catalog::load(Path::new("/nonexistent/tollgate.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/tollgate.toml"), "{err}");
    }

    const Q2_PRODUCT: &str = r#"
        [products.bh]
        name = "Budget Helper"
        [products.bh.tiers.standard]
        features = ["BudgetHelper"]
        [products.bh.tiers.premium]
        features = ["BudgetHelper", "BudgetReports"]
        [products.bh.plans.q2]
        STANDARD = "standard"
        PREMIUM = "premium"
        [products.bh.q2]
        product_identifier = "3f2c-bh"
        extensions = ["BudgetHelper", "BudgetReports"]
        max_users_per_institution = 3
        minimum_term_days = 30
        cancel_access = "immediate"
        default_edition = "STANDARD"
    "#;

    #[test]
    fn a_q2_product_is_found_by_its_identifier_with_its_rules() {
        let c = parse(Q2_PRODUCT).unwrap();
        let (id, q2) = c.q2_product("3f2c-bh").unwrap();
        assert_eq!(id, "bh");
        assert_eq!(q2.max_users_per_institution, Some(3));
        assert_eq!(q2.minimum_term_days, 30);
        assert_eq!(q2.cancel_access, CancelAccess::Immediate);
        assert_eq!(q2.default_edition.as_deref(), Some("STANDARD"));
        assert!(q2.extensions.contains("BudgetReports"));
        assert!(c.q2_product("bh").is_none(), "looked up by identifier only");
    }

    #[test]
    fn q2_rules_default_to_no_cap_no_minimum_term_and_access_to_period_end() {
        let c =
            parse("[products.p.tiers.t]\n[products.p.q2]\nproduct_identifier = \"x\"\n").unwrap();
        let (_, q2) = c.q2_product("x").unwrap();
        assert_eq!(q2.max_users_per_institution, None);
        assert_eq!(q2.minimum_term_days, 0);
        assert_eq!(q2.cancel_access, CancelAccess::EndOfPeriod);
    }

    #[test]
    fn q2_mistakes_name_the_key() {
        let cases = [
            (
                Q2_PRODUCT.replace(
                    r#"extensions = ["BudgetHelper", "BudgetReports"]"#,
                    r#"extensions = ["BudgetHelpr"]"#,
                ),
                "products.bh.q2.extensions",
            ),
            (
                Q2_PRODUCT.replace(
                    r#"default_edition = "STANDARD""#,
                    r#"default_edition = "GOLD""#,
                ),
                "products.bh.q2.default_edition",
            ),
            (
                Q2_PRODUCT.replace(
                    r#"product_identifier = "3f2c-bh""#,
                    r#"product_identifier = " ""#,
                ),
                "products.bh.q2.product_identifier",
            ),
            (
                format!(
                    "{Q2_PRODUCT}\n[products.other.tiers.t]\n[products.other.q2]\nproduct_identifier = \"3f2c-bh\"\n"
                ),
                "products.other.q2.product_identifier",
            ),
            (
                format!("{Q2_PRODUCT}\n[marketplaces.q2.products]\n\"3f2c-bh\" = \"bh\"\n"),
                "marketplaces.q2.products",
            ),
            (
                Q2_PRODUCT.replace("cancel_access = \"immediate\"", "cancel_access = \"never\""),
                "never",
            ),
        ];
        for (text, key) in cases {
            let err = parse(&text).unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
    }
}
