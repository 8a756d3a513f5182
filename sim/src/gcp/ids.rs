//! Random identifiers in the shapes Google uses.

use chrono::{DateTime, SecondsFormat, Utc};

fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    if getrandom::fill(&mut buf).is_err() {
        // The OS generator does not fail where the stand-in runs; if it ever
        // did, a counter still keeps identifiers unique within the process.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let c = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (c >> ((i % 8) * 8)) as u8;
        }
    }
    buf
}

/// `n` random bytes as lowercase hex.
pub(crate) fn random_hex(n: usize) -> String {
    hex::encode(random_bytes(n))
}

/// A random (version 4) UUID, the shape of entitlement and account ids.
pub(crate) fn uuid() -> String {
    let mut b = random_bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// `digits` random decimal digits, not starting with 0 (service-account
/// unique ids have 21, Pub/Sub message ids 16).
pub(crate) fn numeric(digits: usize) -> String {
    random_bytes(digits)
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let d = if i == 0 { 1 + b % 9 } else { b % 10 };
            char::from(b'0' + d)
        })
        .collect()
}

/// A timestamp the way Google's JSON APIs write one
/// (`2022-07-18T09:39:24.803455Z`).
pub(crate) fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(uuid(), u);
        let n = numeric(21);
        assert_eq!(n.len(), 21);
        assert!(n.bytes().all(|b| b.is_ascii_digit()) && !n.starts_with('0'));
        assert_eq!(random_hex(20).len(), 40);
    }
}
