//! What both backends store and say the same way, written once so they
//! cannot drift apart: how times are written, compared and read back, the
//! delivery status names, JSON documents, version and count conversions,
//! the checks a commit must pass before a backend touches anything, and the
//! wording of the errors callers see.

use std::fmt::Display;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Commit, DeliveryStatus, Recorded, StoreError};
use crate::model::{Marketplace, Subscription, SubscriptionKey};

// ---------------------------------------------------------------- times

/// Stored times are RFC 3339 UTC with nanoseconds
/// (`2026-03-01T00:00:00.000000000Z`). Only instants that fit in `i64` epoch
/// nanoseconds (1677-09-21 to 2262-04-11) are storable: DynamoDB compares
/// expiries as epoch nanoseconds, and within that range every year has four
/// digits, so the text has a fixed width and sorts like the instant it names.
pub(crate) fn time_text(t: DateTime<Utc>) -> Result<String, StoreError> {
    check_time(t)?;
    Ok(t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string())
}

/// Exact epoch nanoseconds of a storable time (see [`time_text`]).
pub(crate) fn epoch_ns(t: DateTime<Utc>) -> Result<i64, StoreError> {
    t.timestamp_nanos_opt().ok_or_else(|| {
        StoreError::Backend(format!(
            "time {t} is outside the storable range ({} to {})",
            DateTime::from_timestamp_nanos(i64::MIN),
            DateTime::from_timestamp_nanos(i64::MAX)
        ))
    })
}

/// Refuses a time the store could not write or compare (see [`time_text`]);
/// every time a store method is given passes through here, whether the
/// backend needs its text, its epoch nanoseconds or neither.
pub(crate) fn check_time(t: DateTime<Utc>) -> Result<(), StoreError> {
    epoch_ns(t).map(|_| ())
}

/// A stored time back, from [`time_text`]'s format.
pub(crate) fn parse_time(text: &str, what: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt(what, format!("time `{text}`: {e}")))
}

// ---------------------------------------------------------------- names

pub(crate) fn parse_status(name: &str, what: &str) -> Result<DeliveryStatus, StoreError> {
    name.parse().map_err(|e| corrupt(what, e))
}

/// What [`super::Deliveries::record_delivery`] reports for a live record
/// in `status`.
pub(crate) fn recorded(status: DeliveryStatus) -> Recorded {
    match status {
        DeliveryStatus::Pending => Recorded::Pending,
        DeliveryStatus::Done => Recorded::Done,
    }
}

pub(crate) fn parse_marketplace(name: &str, what: &str) -> Result<Marketplace, StoreError> {
    name.parse().map_err(|e| corrupt(what, e))
}

/// Token kinds are namespaces and may not contain `#`: DynamoDB keys are
/// `TOKEN#<kind>#<id>`, so a `#` in a kind could make two tokens collide.
/// Both stores refuse such a kind, so one that works on the embedded store
/// also works in production.
pub(crate) fn check_token_kind(kind: &str) -> Result<(), StoreError> {
    if kind.contains('#') {
        return Err(StoreError::Backend(format!(
            "token kind `{kind}` must not contain `#`"
        )));
    }
    Ok(())
}

/// A group's product may not contain `#`: DynamoDB keys are
/// `GROUP#<mkt>#<product>#<group>`, so a `#` in a product could make two
/// groups collide. Both stores refuse it, like a token kind with `#`.
pub(crate) fn check_group(group: &super::GroupKey) -> Result<(), StoreError> {
    if group.product.contains('#') {
        return Err(StoreError::Backend(format!(
            "group product `{}` must not contain `#`",
            group.product
        )));
    }
    Ok(())
}

/// The links of a [`super::UserLinks::replace_links`] for `marketplace`
/// must all be to its customers (a link to another marketplace's would
/// outlive every later replace), with storable times.
pub(crate) fn check_links(
    marketplace: Marketplace,
    links: &[super::UserLink],
) -> Result<(), StoreError> {
    for link in links {
        if link.customer.marketplace != marketplace {
            return Err(StoreError::Backend(format!(
                "replacing {marketplace} links: link to {} is for another marketplace",
                link.customer
            )));
        }
        check_time(link.linked_at)?;
        check_time(link.expires_at)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- documents

pub(crate) fn to_json<T: Serialize>(value: &T, what: &str) -> Result<String, StoreError> {
    serde_json::to_string(value)
        .map_err(|e| StoreError::Backend(format!("{what}: cannot serialize: {e}")))
}

pub(crate) fn from_json<T: DeserializeOwned>(doc: &str, what: &str) -> Result<T, StoreError> {
    serde_json::from_str(doc).map_err(|e| corrupt(what, format!("garbled document: {e}")))
}

/// The document stored for a subscription state: the state as JSON, seat
/// count left out. Seats are counted only by the seat operations, so a
/// commit of a state read before a claim cannot undo that claim.
pub(crate) fn state_doc(state: &Subscription) -> Result<String, StoreError> {
    let mut doc = state.clone();
    doc.seats.used = 0;
    to_json(&doc, &format!("subscription {}", state.key))
}

/// A stored state back: the stored version and seat count are
/// authoritative over whatever the document says.
pub(crate) fn state_from_doc(
    doc: &str,
    version: u64,
    seats_used: u32,
    what: &str,
) -> Result<Subscription, StoreError> {
    let mut sub: Subscription = from_json(doc, what)?;
    sub.version = version;
    sub.seats.used = seats_used;
    Ok(sub)
}

// ---------------------------------------------------------------- numbers

/// The highest version a subscription may reach: SQLite stores versions
/// as signed 64-bit integers.
const MAX_VERSION: u64 = i64::MAX as u64;

#[cfg(feature = "embedded-store")]
pub(crate) fn version_to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Backend(format!("version {v} is out of range")))
}

#[cfg(feature = "embedded-store")]
pub(crate) fn version_from_i64(v: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt(what, format!("negative version {v}")))
}

/// A number of seat holders as a state's or a [`super::SeatClaim`]'s `used`.
#[cfg(any(test, feature = "embedded-store"))]
pub(crate) fn seat_count<N>(n: N, what: &str) -> Result<u32, StoreError>
where
    N: TryInto<u32> + Copy + Display,
{
    n.try_into()
        .map_err(|_| corrupt(what, format!("seat count {n}")))
}

// ---------------------------------------------------------------- commits

/// "Now" for a commit, which has no clock of its own: the log entry's
/// `recorded_at`. It decides whether the delivery's dedupe mark is live.
pub(crate) fn commit_now(c: &Commit) -> DateTime<Utc> {
    c.log.recorded_at
}

/// Refuses a commit outright, before a backend writes anything, if writing
/// it would break the version sequence or file state under the wrong key:
/// the log entry and the state must be for the commit's subscription, the
/// state must be exactly the next version, and every time must be storable.
pub(crate) fn check_commit(c: &Commit) -> Result<(), StoreError> {
    let key = &c.subscription;
    if c.log.subscription != *key {
        return Err(StoreError::Backend(format!(
            "commit for {key} carries a log entry for {}",
            c.log.subscription
        )));
    }
    if let Some(state) = &c.state {
        if state.key != *key {
            return Err(StoreError::Backend(format!(
                "commit for {key} carries the state of {}",
                state.key
            )));
        }
        let next = c
            .expected_version
            .checked_add(1)
            .filter(|v| *v <= MAX_VERSION);
        if Some(state.version) != next {
            return Err(StoreError::Backend(format!(
                "commit for {key} at version {} carries state version {} (must be the next, \
                 at most {MAX_VERSION})",
                c.expected_version, state.version
            )));
        }
    }
    check_time(commit_now(c))?;
    if let Some(mark) = &c.delivery {
        check_time(mark.expires_at)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- errors

/// The version a commit was conditional on is no longer current.
pub(crate) fn conflict(key: &SubscriptionKey, expected: u64) -> StoreError {
    StoreError::Conflict(format!("{key} (expected version {expected})"))
}

/// A commit's delivery is already processed (and its mark still live).
pub(crate) fn duplicate_delivery(marketplace: Marketplace, id: &str) -> StoreError {
    StoreError::Duplicate(format!("delivery {marketplace}:{id} (already processed)"))
}

/// A live token of the same kind and id exists. The id is left out on
/// purpose: it may be a secret (an OAuth `state`), and errors end up in logs
/// and responses.
pub(crate) fn duplicate_token(kind: &str) -> StoreError {
    StoreError::Duplicate(format!("a live `{kind}` token with the same id"))
}

/// A seat operation on a subscription that was never stored.
pub(crate) fn no_subscription(key: &SubscriptionKey) -> StoreError {
    StoreError::NotFound(format!("subscription {key}"))
}

/// Something stored that this build cannot read back: an operator must look.
pub(crate) fn corrupt(what: &str, detail: impl Display) -> StoreError {
    StoreError::Backend(format!("corrupt item {what}: {detail}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_772_323_200 + secs, 0).expect("in range")
    }

    #[test]
    fn times_are_fixed_width_and_sort_as_text_like_the_instants_they_name() {
        let times = [
            DateTime::from_timestamp_nanos(i64::MIN),
            DateTime::from_timestamp(0, 0).expect("epoch"),
            DateTime::from_timestamp(1_700_000_000, 5).expect("in range"),
            DateTime::from_timestamp(1_700_000_000, 400_000_000).expect("in range"),
            at(-1),
            at(0),
            at(0) + Duration::nanoseconds(1),
            at(1),
            at(86_400 * 400),
            DateTime::from_timestamp_nanos(i64::MAX),
        ];
        let texts: Vec<String> = times
            .iter()
            .map(|t| time_text(*t).expect("storable"))
            .collect();
        for pair in texts.windows(2) {
            assert!(pair[0] < pair[1], "{} !< {}", pair[0], pair[1]);
            assert_eq!(pair[0].len(), pair[1].len());
        }
        for (t, text) in times.iter().zip(&texts) {
            assert_eq!(parse_time(text, "t"), Ok(*t));
        }
        assert_eq!(
            time_text(DateTime::from_timestamp(1_700_000_000, 5).expect("in range")),
            Ok("2023-11-14T22:13:20.000000005Z".to_owned())
        );
    }

    #[test]
    fn times_outside_the_epoch_nanosecond_range_are_refused() {
        let early = DateTime::from_timestamp_nanos(i64::MIN) - Duration::nanoseconds(1);
        let late = DateTime::from_timestamp_nanos(i64::MAX) + Duration::nanoseconds(1);
        for t in [early, late] {
            assert!(matches!(time_text(t), Err(StoreError::Backend(_))), "{t}");
            assert!(matches!(epoch_ns(t), Err(StoreError::Backend(_))), "{t}");
        }
    }

    #[test]
    fn a_garbled_time_or_name_is_a_corrupt_item_naming_it() {
        for err in [
            parse_time("yesterday", "x#1").expect_err("garbled"),
            parse_status("weird", "x#1").expect_err("unknown"),
            parse_marketplace("aws", "x#1").expect_err("unknown"),
            from_json::<Subscription>("{not json", "x#1").expect_err("garbled"),
        ] {
            assert!(
                matches!(&err, StoreError::Backend(m) if m.starts_with("corrupt item x#1: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn the_duplicate_token_error_names_the_kind_but_never_the_id() {
        let err = duplicate_token("oauth_state");
        assert!(err.to_string().contains("oauth_state"), "{err}");
        assert!(matches!(err, StoreError::Duplicate(_)));
    }

    #[test]
    fn versions_and_counts_convert_or_say_why_not() {
        assert_eq!(version_to_i64(7), Ok(7));
        assert!(version_to_i64(u64::MAX).is_err());
        assert_eq!(version_from_i64(7, "x"), Ok(7));
        assert!(version_from_i64(-1, "x").is_err());
        assert_eq!(seat_count(3_usize, "x"), Ok(3));
        assert_eq!(seat_count(3_i64, "x"), Ok(3));
        assert!(seat_count(-1_i64, "x").is_err());
        assert!(seat_count(u64::MAX, "x").is_err());
    }

    #[test]
    fn token_kinds_may_not_contain_the_key_separator() {
        assert_eq!(check_token_kind("oauth_state"), Ok(()));
        assert!(matches!(
            check_token_kind("a#b"),
            Err(StoreError::Backend(_))
        ));
    }
}
