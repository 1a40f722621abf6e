//! Cloning: how a node of a cluster hands the cluster's secrets to a new member.
//!
//! A cluster's nodes share three secrets a new node cannot make for itself: the **domain
//! key** (every token key and node key is sealed under it), the **cluster key** (it issues
//! the node certificates peers trust) and the **cluster id**. CloudHSM's appliance user moves
//! them from HSM to HSM wrapped to the target's key (`CN_CLONE_*` in the audit log); Coffer
//! does the same:
//!
//! 1. the joining node (started with `join = true`) offers its identity public key, the key
//!    of the bootstrap certificate the admin pinned by fingerprint ([`CloneOffer`]);
//! 2. the existing node makes an ephemeral P-256 key, derives a shared secret with ECDH
//!    against the offered key, expands it with HKDF-SHA256 into an AES-256 key, and encrypts
//!    the secrets with AES-256-GCM ([`wrap`]);
//! 3. the joining node repeats the ECDH with its identity private key and decrypts
//!    ([`unwrap`]).
//!
//! The HKDF info and the GCM additional data both carry the [`CloneBinding`]: the
//! recipient's public key and its replication id. A wrapped clone therefore opens only for
//! the node it was made for, and only as the member the existing node is about to add.
//! Every step runs in the crypto module (aws-lc-rs); the secrets only exist in the clear in
//! wiped buffers.

use coffer_crypto::{
    CipherMechanism, CryptoError, DeriveMechanism, EcCurve, GcmParams, HashAlg, Key, KeySpec, KeyType,
    Module, PublicKey,
};
use coffer_store::DomainKey;
use zeroize::Zeroizing;

use crate::pki::IdentityKey;

/// Labels the key derivation and the ciphertext as Coffer's clone format, version 1.
const CLONE_LABEL: &[u8] = b"coffer clone v1";
/// The AES-256-GCM tag, in bits.
const TAG_BITS: u32 = 128;
/// The domain key's length (AES-256).
const DOMAIN_KEY_LEN: usize = 32;

/// Why a clone could not be wrapped or opened.
#[derive(Debug, thiserror::Error)]
pub enum CloneError {
    #[error("crypto module: {0}")]
    Crypto(#[from] CryptoError),
    /// The offered key is not a P-256 public key.
    #[error("the joining node's identity key is not an EC P-256 key: {0}")]
    RecipientKey(String),
    /// The ciphertext did not open (made for another node or member, or altered).
    #[error(
        "the wrapped clone does not open with this node's identity key (made for another node, or altered)"
    )]
    DoesNotOpen,
    /// It opened, but what is inside is not a clone payload.
    #[error("the clone payload is malformed: {0}")]
    Malformed(&'static str),
}

/// What a joining node offers: who it is and where its peers reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneOffer {
    /// Its node id (from its configuration).
    pub node_id: String,
    /// Its replication id.
    pub raft_id: u64,
    /// Its identity public key (SubjectPublicKeyInfo DER).
    pub identity_spki: Vec<u8>,
    /// The address of its peer port, as other nodes reach it.
    pub peer_addr: String,
    /// The address of its client port, as clients reach it.
    pub client_addr: String,
}

/// What a wrapped clone is bound to: the recipient's key and the member it becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloneBinding<'a> {
    pub recipient_spki: &'a [u8],
    pub raft_id: u64,
}

impl CloneBinding<'_> {
    /// The bytes both the key derivation and the additional data carry.
    fn bytes(&self) -> Vec<u8> {
        let mut out = CLONE_LABEL.to_vec();
        out.extend_from_slice(&(self.recipient_spki.len() as u32).to_be_bytes());
        out.extend_from_slice(self.recipient_spki);
        out.extend_from_slice(&self.raft_id.to_be_bytes());
        out
    }
}

/// The cluster's secrets, in the clear (inside wiped buffers).
#[derive(Debug)]
pub struct CloneSecrets {
    pub domain: DomainKey,
    /// The cluster key as PKCS#8 DER.
    pub cluster_key_pkcs8: Zeroizing<Vec<u8>>,
    pub cluster_id: String,
}

/// The secrets wrapped to one node: the ephemeral public point, the GCM IV, the ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedClone {
    pub ephemeral_point: Vec<u8>,
    pub iv: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// Wraps `secrets` to the node that offered `recipient` (its identity key), for `binding`.
pub fn wrap(
    module: &Module,
    recipient: &PublicKey,
    binding: &CloneBinding<'_>,
    secrets: &CloneSecrets,
) -> Result<WrappedClone, CloneError> {
    let point = recipient.ec_point().map_err(|e| CloneError::RecipientKey(e.to_string()))?.to_vec();
    let ephemeral = module.generate_key_pair(&KeySpec::Ec(EcCurve::P256))?;
    let ephemeral_point = ephemeral.public.ec_point()?.to_vec();
    let kek = key_encryption_key(module, Key::Private(ephemeral.private), point, &ephemeral_point, binding)?;
    let plain = encode(secrets);
    let mechanism = gcm(None, binding);
    let sealed = module.encrypt(&kek, &mechanism, &plain)?;
    let iv = sealed.generated_iv.ok_or(CloneError::Malformed("the module returned no IV"))?;
    Ok(WrappedClone { ephemeral_point, iv, ciphertext: sealed.data })
}

/// Opens a clone wrapped to this node's `identity` key for `binding`.
pub fn unwrap(
    module: &Module,
    identity: &IdentityKey,
    binding: &CloneBinding<'_>,
    wrapped: &WrappedClone,
) -> Result<CloneSecrets, CloneError> {
    let private = module.private_key_from_pkcs8(&identity.pkcs8_der())?.private;
    let kek = key_encryption_key(
        module,
        Key::Private(private),
        wrapped.ephemeral_point.clone(),
        &wrapped.ephemeral_point,
        binding,
    )
    // A point that is not on the curve fails the ECDH: it is a clone that does not open.
    .map_err(|_| CloneError::DoesNotOpen)?;
    let mechanism = gcm(Some(wrapped.iv.clone()), binding);
    let plain = Zeroizing::new(
        module.decrypt(&kek, &mechanism, &wrapped.ciphertext).map_err(|_| CloneError::DoesNotOpen)?,
    );
    decode(&plain)
}

/// ECDH of `private` with `peer_point`, then HKDF-SHA256 (salt: the ephemeral point; info:
/// the binding) into an AES-256 key.
fn key_encryption_key(
    module: &Module,
    private: Key,
    peer_point: Vec<u8>,
    ephemeral_point: &[u8],
    binding: &CloneBinding<'_>,
) -> Result<Key, CloneError> {
    let ecdh = DeriveMechanism::Ecdh1Derive { kdf: None, shared_data: Vec::new(), public_value: peer_point };
    let shared = module.derive(&private, &ecdh, KeyType::GenericSecret, 32)?;
    let hkdf = DeriveMechanism::Hkdf {
        hash: HashAlg::Sha256,
        salt: ephemeral_point.to_vec(),
        info: binding.bytes(),
    };
    Ok(Key::Secret(module.derive(&Key::Secret(shared), &hkdf, KeyType::Aes, 32)?))
}

fn gcm(iv: Option<Vec<u8>>, binding: &CloneBinding<'_>) -> CipherMechanism {
    CipherMechanism::AesGcm(GcmParams { iv, aad: binding.bytes(), tag_bits: TAG_BITS })
}

/// The payload: the domain key (32 bytes), the cluster id's length (1 byte) and text, then
/// the cluster key's PKCS#8.
fn encode(secrets: &CloneSecrets) -> Zeroizing<Vec<u8>> {
    let domain = secrets.domain.export_for_clone();
    let id = secrets.cluster_id.as_bytes();
    let mut out =
        Zeroizing::new(Vec::with_capacity(domain.len() + 1 + id.len() + secrets.cluster_key_pkcs8.len()));
    out.extend_from_slice(&domain);
    // Cluster ids are `cluster-` and 16 hex digits; anything longer is cut at 255 bytes,
    // which never happens for an id this node made.
    let id = &id[..id.len().min(255)];
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.extend_from_slice(&secrets.cluster_key_pkcs8);
    out
}

fn decode(plain: &[u8]) -> Result<CloneSecrets, CloneError> {
    let (domain, rest) =
        plain.split_at_checked(DOMAIN_KEY_LEN).ok_or(CloneError::Malformed("shorter than a domain key"))?;
    let (&id_len, rest) = rest.split_first().ok_or(CloneError::Malformed("no cluster id"))?;
    let (id, pkcs8) = rest
        .split_at_checked(usize::from(id_len))
        .ok_or(CloneError::Malformed("the cluster id is cut short"))?;
    let cluster_id =
        std::str::from_utf8(id).map_err(|_| CloneError::Malformed("the cluster id is not text"))?.to_owned();
    if pkcs8.is_empty() {
        return Err(CloneError::Malformed("no cluster key"));
    }
    let domain =
        DomainKey::import_from_clone(domain).map_err(|_| CloneError::Malformed("a bad domain key"))?;
    Ok(CloneSecrets { domain, cluster_key_pkcs8: Zeroizing::new(pkcs8.to_vec()), cluster_id })
}

#[cfg(test)]
mod tests {
    use coffer_store::BlobContext;

    use super::*;

    struct Fixture {
        module: Module,
        source_domain: DomainKey,
        secrets: CloneSecrets,
        joiner: IdentityKey,
    }

    fn fixture() -> Fixture {
        let module = Module::power_on();
        let cluster = IdentityKey::generate(&module).unwrap_or_else(|e| panic!("{e}"));
        let source_domain = DomainKey::generate(&module).unwrap_or_else(|e| panic!("{e}"));
        let secrets = CloneSecrets {
            domain: DomainKey::import_from_clone(&source_domain.export_for_clone())
                .unwrap_or_else(|e| panic!("{e}")),
            cluster_key_pkcs8: cluster.pkcs8_der(),
            cluster_id: "cluster-0123456789abcdef".into(),
        };
        let joiner = IdentityKey::generate(&module).unwrap_or_else(|e| panic!("{e}"));
        Fixture { module, source_domain, secrets, joiner }
    }

    fn wrapped(f: &Fixture, binding: &CloneBinding<'_>) -> WrappedClone {
        wrap(&f.module, f.joiner.public_key(), binding, &f.secrets).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_clone_opens_for_its_recipient_with_the_same_secrets() {
        let f = fixture();
        let spki = f.joiner.public_key().spki_der().to_vec();
        let binding = CloneBinding { recipient_spki: &spki, raft_id: 7 };
        let clone = wrapped(&f, &binding);
        let opened = unwrap(&f.module, &f.joiner, &binding, &clone).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(opened.cluster_id, f.secrets.cluster_id);
        assert_eq!(*opened.cluster_key_pkcs8, *f.secrets.cluster_key_pkcs8);
        // The domain key is the same key: a blob sealed by the source opens with the copy.
        let ctx = BlobContext {
            object_id: 1,
            class: coffer_crypto::KeyClass::Secret,
            key_type: KeyType::Aes,
            owner: "u",
        };
        let blob = f.source_domain.seal(&f.module, &ctx, b"token key").unwrap_or_else(|e| panic!("{e}"));
        let open = opened.domain.open(&f.module, &ctx, &blob).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(open.as_slice(), b"token key");
        // Nothing of the secrets is in what goes over the wire.
        let domain = f.secrets.domain.export_for_clone();
        for wire in [&clone.ciphertext, &clone.ephemeral_point] {
            assert!(!wire.windows(domain.len()).any(|w| w == domain.as_slice()));
            assert!(!wire.windows(16).any(|w| f.secrets.cluster_key_pkcs8.windows(16).any(|k| k == w)));
        }
    }

    #[test]
    fn a_clone_does_not_open_for_another_node_member_or_after_tampering() {
        let f = fixture();
        let spki = f.joiner.public_key().spki_der().to_vec();
        let binding = CloneBinding { recipient_spki: &spki, raft_id: 7 };
        let clone = wrapped(&f, &binding);

        let other = IdentityKey::generate(&f.module).unwrap_or_else(|e| panic!("{e}"));
        let refused = unwrap(&f.module, &other, &binding, &clone);
        assert!(matches!(refused, Err(CloneError::DoesNotOpen)), "{refused:?}");

        let as_other_member = CloneBinding { recipient_spki: &spki, raft_id: 8 };
        let refused = unwrap(&f.module, &f.joiner, &as_other_member, &clone);
        assert!(matches!(refused, Err(CloneError::DoesNotOpen)), "{refused:?}");

        let mut altered = clone.clone();
        altered.ciphertext[0] ^= 1;
        assert!(matches!(unwrap(&f.module, &f.joiner, &binding, &altered), Err(CloneError::DoesNotOpen)));
        let mut bad_point = clone.clone();
        bad_point.ephemeral_point[5] ^= 1;
        assert!(matches!(unwrap(&f.module, &f.joiner, &binding, &bad_point), Err(CloneError::DoesNotOpen)));
    }

    #[test]
    fn a_recipient_key_that_is_not_p256_is_refused() {
        let f = fixture();
        let ed = f.module.generate_key_pair(&KeySpec::Ed25519).unwrap_or_else(|e| panic!("{e}"));
        let spki = ed.public.spki_der().to_vec();
        let binding = CloneBinding { recipient_spki: &spki, raft_id: 7 };
        let refused = wrap(&f.module, &ed.public, &binding, &f.secrets);
        assert!(matches!(refused, Err(CloneError::RecipientKey(_))), "{refused:?}");
    }

    #[test]
    fn a_malformed_payload_is_refused() {
        assert!(matches!(decode(&[0; 10]), Err(CloneError::Malformed(_))));
        let mut plain = vec![7u8; DOMAIN_KEY_LEN];
        plain.push(40);
        plain.extend_from_slice(b"short");
        assert!(matches!(decode(&plain), Err(CloneError::Malformed(_))));
        let mut no_key = vec![7u8; DOMAIN_KEY_LEN];
        no_key.push(2);
        no_key.extend_from_slice(b"id");
        assert!(matches!(decode(&no_key), Err(CloneError::Malformed(_))));
    }
}
