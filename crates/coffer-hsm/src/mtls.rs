//! Client mutual TLS as replicated cluster state (cloudhsm-cli `cluster mtls
//! register-trust-anchor | deregister-trust-anchor | set-enforcement`).
//!
//! The client trust anchors and the enforcement flag are cluster settings: every node must
//! accept and refuse the same clients, so they travel with the state and change only through
//! commands, which only an admin may give (`Operation::SetClusterSettings`) and which are
//! audited as `CN_CERT_AUTH_STORE_CERT`. The certificates are opaque PEM here: the node parses
//! and checks them (CA, validity, size) and computes the fingerprint before it proposes the
//! command; the state machine keeps the list consistent (no duplicates, a bounded number, and
//! never enforcement without an anchor, which would lock every client out).

use serde::{Deserialize, Serialize};

use crate::error::{HsmError, Result};

/// At most this many client trust anchors are registered at once.
pub const MAX_TRUST_ANCHORS: usize = 16;

/// The longest certificate PEM accepted (CloudHSM's InitializeCluster limit).
pub const MAX_TRUST_ANCHOR_PEM: usize = 5_000;

/// One registered client trust anchor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustAnchor {
    /// SHA-256 of the certificate's DER, upper-case colon-separated hex (`AB:CD:…`).
    pub fingerprint: String,
    /// The CA certificate, PEM.
    pub certificate_pem: String,
}

/// The client mTLS settings of the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MtlsSettings {
    /// Registered anchors, in registration order.
    pub anchors: Vec<TrustAnchor>,
    /// Whether a client certificate chaining to a registered anchor is required.
    pub enforce: bool,
}

impl MtlsSettings {
    /// The anchor with this fingerprint (any case, colons optional).
    pub fn anchor(&self, fingerprint: &str) -> Option<&TrustAnchor> {
        let wanted = normalize_fingerprint(fingerprint).ok()?;
        self.anchors.iter().find(|a| a.fingerprint == wanted)
    }
}

/// A SHA-256 fingerprint in the stored form: 32 upper-case hex bytes separated by colons.
/// Input may be any case, with or without colons.
pub fn normalize_fingerprint(fingerprint: &str) -> Result<String> {
    let hex: String = fingerprint.chars().filter(|c| *c != ':').collect::<String>().to_ascii_uppercase();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(HsmError::AttributeValueInvalid(format!(
            "{fingerprint:?} is not a SHA-256 fingerprint (64 hex digits, colons optional)"
        )));
    }
    let pairs: Vec<&str> = (0..32).map(|i| &hex[2 * i..2 * i + 2]).collect();
    Ok(pairs.join(":"))
}

/// What the state machine checks of an anchor it is asked to register (the node checked the
/// certificate itself).
pub(crate) fn check_new_anchor(settings: &MtlsSettings, anchor: &TrustAnchor) -> Result<()> {
    if normalize_fingerprint(&anchor.fingerprint)? != anchor.fingerprint {
        return Err(HsmError::AttributeValueInvalid("the fingerprint is not in its stored form".into()));
    }
    let pem = anchor.certificate_pem.trim_start();
    if !pem.starts_with("-----BEGIN CERTIFICATE-----") || anchor.certificate_pem.len() > MAX_TRUST_ANCHOR_PEM
    {
        return Err(HsmError::AttributeValueInvalid(format!(
            "a trust anchor is one PEM certificate of at most {MAX_TRUST_ANCHOR_PEM} characters"
        )));
    }
    if settings.anchor(&anchor.fingerprint).is_some() {
        return Err(HsmError::AttributeValueInvalid(format!(
            "the trust anchor {} is already registered",
            anchor.fingerprint
        )));
    }
    if settings.anchors.len() >= MAX_TRUST_ANCHORS {
        return Err(HsmError::LimitReached(format!(
            "at most {MAX_TRUST_ANCHORS} client trust anchors can be registered"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_normalize_and_bad_ones_are_refused() {
        let plain = "ab".repeat(32);
        let colons = normalize_fingerprint(&plain).unwrap_or_default();
        assert_eq!(colons.len(), 95);
        assert!(colons.starts_with("AB:AB:"));
        assert_eq!(normalize_fingerprint(&colons.to_lowercase()).as_deref(), Ok(colons.as_str()));
        for bad in ["", "AB", &"zz".repeat(32), &"ab".repeat(33)] {
            assert!(matches!(normalize_fingerprint(bad), Err(HsmError::AttributeValueInvalid(_))), "{bad}");
        }
    }
}
