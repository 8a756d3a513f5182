//! Secret values and the named set a deployment is given. Printing either
//! shows no value, so a secret cannot leak through logs or `Debug` output by
//! accident. Loading them (a file, AWS Secrets Manager) is I/O and lives in
//! the `tollgate` crate's setup.

use std::collections::BTreeMap;
use std::fmt;

/// A secret value: printing it shows `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Why a secrets document or lookup failed. Never carries a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// Not a flat JSON object of strings. Described by
    /// [`crate::json_error::describe`]: serde's own message would quote the
    /// offending value, which is a secret.
    #[error("expected a JSON object of strings: {0}")]
    Malformed(String),
    #[error("missing secret `{0}` (add it to the secrets source named by TOLLGATE_SECRETS)")]
    Missing(String),
}

/// Named secrets (a flat JSON object of strings).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(BTreeMap<String, Secret>);

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Secrets {
    pub fn from_json(text: &str) -> Result<Self, SecretsError> {
        let map: BTreeMap<String, String> = serde_json::from_str(text)
            .map_err(|e| SecretsError::Malformed(crate::json_error::describe(&e)))?;
        Ok(Self(map.into_iter().map(|(k, v)| (k, Secret(v))).collect()))
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Secret::new(v)))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.get(name)
    }

    pub fn require(&self, name: &str) -> Result<&Secret, SecretsError> {
        self.get(name)
            .ok_or_else(|| SecretsError::Missing(name.to_owned()))
    }

    /// Names of secrets starting with `prefix` (e.g. every `api_key.*`).
    pub fn with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a Secret)> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.as_str(), v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_values() {
        let s = Secrets::from_json(r#"{"github_webhook_secret":"hunter2"}"#).unwrap();
        let shown = format!("{s:?} {:?}", s.get("github_webhook_secret").unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(
            s.require("github_webhook_secret").unwrap().expose(),
            "hunter2"
        );
        assert!(s.require("nope").unwrap_err().to_string().contains("nope"));
    }

    #[test]
    fn a_malformed_document_is_reported_without_its_values() {
        let err = Secrets::from_json(r#"{"api_key.x": 12345678}"#).unwrap_err();
        let shown = err.to_string();
        assert!(!shown.contains("12345678"), "{shown}");
        assert!(shown.contains("line 1"), "{shown}");
        // A secret of the wrong type (an object, a list): the kind and the
        // position, never the value.
        for doc in [
            r#"{"ok":"x","github_webhook_secret":{"value":"hunter2-leak"}}"#,
            r#"{"github_webhook_secret":["hunter2-leak"]}"#,
            r#"{"github_webhook_secret":"hunter2-leak","x":true}"#,
            r#"{"github_webhook_secret":"hunter2-leak"#,
        ] {
            let shown = format!("{0} {0:?}", Secrets::from_json(doc).unwrap_err());
            assert!(!shown.contains("hunter2"), "{doc}: {shown}");
            assert!(shown.contains("at line 1 column"), "{doc}: {shown}");
        }
        assert_eq!(
            Secrets::from_json(r#"{"a":["hunter2-leak"]}"#)
                .unwrap_err()
                .to_string(),
            "expected a JSON object of strings: invalid type: sequence, expected a string at line 1 column 5"
        );
    }
}
