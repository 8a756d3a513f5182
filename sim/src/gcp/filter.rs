//! The `filter` of `entitlements.list`, as its parameter description in the
//! discovery document defines it: `attribute=value`, `!=` and `:` (set
//! membership), combined with `AND` (or nothing), `OR`, `NOT` and
//! parentheses; values with characters other than letters, digits and `_`
//! double-quoted; `state` matched case-insensitively with or without the
//! `ENTITLEMENT_` prefix.

use super::state::{Entitlement, Listing};

/// The attributes Google documents for the filter.
const ATTRIBUTES: [&str; 13] = [
    "account",
    "customer_billing_account",
    "product_external_name",
    "quote_external_name",
    "offer",
    "new_pending_offer",
    "plan",
    "newPendingPlan",
    "new_pending_plan",
    "state",
    "services",
    "consumers.project",
    "change_history.new_offer",
];

/// Repeated fields: only `:` applies to them.
const REPEATED: [&str; 2] = ["consumers.project", "change_history.new_offer"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Filter {
    All,
    Cmp {
        attribute: String,
        op: Op,
        value: String,
    },
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Has,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Op(Op),
    Open,
    Close,
}

fn tokenize(s: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' => {
                chars.next();
                out.push(Token::Open);
            }
            ')' => {
                chars.next();
                out.push(Token::Close);
            }
            '=' => {
                chars.next();
                out.push(Token::Op(Op::Eq));
            }
            ':' => {
                chars.next();
                out.push(Token::Op(Op::Has));
            }
            '!' => {
                chars.next();
                if chars.next() != Some('=') {
                    return Err("`!` must be followed by `=`".into());
                }
                out.push(Token::Op(Op::Ne));
            }
            '"' => {
                chars.next();
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err("unterminated quoted value".into()),
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => value.push(c),
                            None => return Err("unterminated quoted value".into()),
                        },
                        Some(c) => value.push(c),
                    }
                }
                out.push(Token::Quoted(value));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '=' | '!' | ':' | '"') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == k)
    }

    fn or(&mut self) -> Result<Filter, String> {
        let mut left = self.and()?;
        while self.keyword("OR") {
            self.next();
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Filter, String> {
        let mut left = self.unary()?;
        loop {
            if self.keyword("AND") {
                self.next();
            } else if matches!(self.peek(), None | Some(Token::Close)) || self.keyword("OR") {
                return Ok(left);
            }
            // `AND` may be omitted between two predicates.
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Filter, String> {
        match self.next() {
            Some(Token::Word(w)) if w == "NOT" => Ok(Filter::Not(Box::new(self.unary()?))),
            Some(Token::Open) => {
                let inner = self.or()?;
                match self.next() {
                    Some(Token::Close) => Ok(inner),
                    _ => Err("missing `)`".into()),
                }
            }
            Some(Token::Word(attribute)) => {
                if !ATTRIBUTES.contains(&attribute.as_str()) {
                    return Err(format!("unsupported attribute `{attribute}`"));
                }
                let Some(Token::Op(op)) = self.next() else {
                    return Err(format!("expected `=`, `!=` or `:` after `{attribute}`"));
                };
                if REPEATED.contains(&attribute.as_str()) && op != Op::Has {
                    return Err(format!("`{attribute}` is repeated: use `:`"));
                }
                let value = match self.next() {
                    Some(Token::Word(v)) => {
                        // Unquoted values are letters, digits, `_` — and `-`,
                        // which Google's own examples leave unquoted.
                        if v.is_empty()
                            || !v
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                        {
                            return Err(format!("value `{v}` must be quoted"));
                        }
                        v
                    }
                    Some(Token::Quoted(v)) => v,
                    _ => return Err(format!("expected a value after `{attribute}`")),
                };
                Ok(Filter::Cmp {
                    attribute,
                    op,
                    value,
                })
            }
            _ => Err("expected a predicate".into()),
        }
    }
}

impl Filter {
    pub fn parse(s: &str) -> Result<Filter, String> {
        if s.trim().is_empty() {
            return Ok(Filter::All);
        }
        let mut p = Parser {
            tokens: tokenize(s)?,
            at: 0,
        };
        let f = p.or()?;
        if p.at < p.tokens.len() {
            return Err("unexpected input after the filter".into());
        }
        Ok(f)
    }

    pub fn matches(&self, listing: &Listing, e: &Entitlement) -> bool {
        match self {
            Filter::All => true,
            Filter::Not(f) => !f.matches(listing, e),
            Filter::And(a, b) => a.matches(listing, e) && b.matches(listing, e),
            Filter::Or(a, b) => a.matches(listing, e) || b.matches(listing, e),
            Filter::Cmp {
                attribute,
                op,
                value,
            } => {
                if REPEATED.contains(&attribute.as_str()) {
                    // The stand-in's entitlements have no consumers and no
                    // offer history.
                    return false;
                }
                let equal = attribute_equals(listing, e, attribute, value);
                match op {
                    Op::Eq | Op::Has => equal,
                    Op::Ne => !equal,
                }
            }
        }
    }
}

fn attribute_equals(listing: &Listing, e: &Entitlement, attribute: &str, value: &str) -> bool {
    match attribute {
        // The account id, or its resource name.
        "account" => value == e.account_id || value == listing.account_name(&e.account_id),
        "product_external_name" => value == listing.product_external_name,
        "offer" => e.offer.as_deref() == Some(value),
        "plan" => value == e.plan,
        "newPendingPlan" | "new_pending_plan" => e.new_pending_plan.as_deref() == Some(value),
        "state" => {
            let v = value.to_ascii_uppercase();
            let v = if v.starts_with("ENTITLEMENT_") {
                v
            } else {
                format!("ENTITLEMENT_{v}")
            };
            v == e.state.as_str()
        }
        // Quotes, billing accounts, pending offers, services: the stand-in
        // has none of them, so only an empty value matches.
        _ => value.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gcp::state::{EntitlementState, Records};
    use chrono::Utc;

    #[test]
    fn parses_googles_examples() {
        for ok in [
            "account=E-1234-5678-ABCD-EFGH",
            "state=pending_cancellation",
            "plan!=foo-plan",
            "consumers.project:projects/123456789",
            "product_external_name=\"providerId:productId\"",
            "state=active AND (account=E-1234 OR account=5678) AND NOT (plan=foo-product)",
            "account=E-1234 state=active",
        ] {
            // `projects/123456789` is unquoted in Google's text but has a `/`:
            // the stand-in requires the quotes the rule asks for.
            let parsed = Filter::parse(ok);
            if ok.contains("projects/") {
                assert!(parsed.is_err(), "{ok}");
                Filter::parse("consumers.project:\"projects/123456789\"").unwrap();
            } else {
                parsed.unwrap_or_else(|e| panic!("{ok}: {e}"));
            }
        }
        for bad in [
            "colour=red",
            "state=",
            "state=active AND",
            "(state=active",
            "consumers.project=\"projects/1\"",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matches_state_account_and_plan() {
        let l = Listing::demo();
        let mut r = Records::default();
        let now = Utc::now();
        let (a, _) = r.order(&l, "A-1", "team-monthly", false, now).unwrap();
        let (b, _) = r.order(&l, "B-2", "free", false, now).unwrap();
        r.approve_account("B-2", None, None, now).unwrap();
        r.approve_entitlement(&l, &b, now).unwrap();
        let pick = |f: &str| -> Vec<String> {
            let f = Filter::parse(f).unwrap();
            r.entitlements
                .iter()
                .filter(|e| f.matches(&l, e))
                .map(|e| e.id.clone())
                .collect()
        };
        assert_eq!(pick("state=activation_requested"), [a.as_str()]);
        assert_eq!(pick("state=ENTITLEMENT_ACTIVE"), [b.as_str()]);
        assert_eq!(pick("account=A-1 state=activation_requested"), [a.as_str()]);
        assert_eq!(
            pick("account=\"providers/acme-public/accounts/B-2\""),
            [b.as_str()]
        );
        assert_eq!(pick("NOT plan=free"), [a.as_str()]);
        assert_eq!(pick("plan=free OR plan=team-monthly").len(), 2);
        assert!(pick("state=cancelled").is_empty());
        assert_eq!(r.entitlement(&b).unwrap().state, EntitlementState::Active);
    }
}
