//! The node's own keys, sealed at rest in its store.
//!
//! A node makes three keys on its first start, inside the crypto module:
//! - its **identity key** (EC P-256): the key of its TLS certificates (the bootstrap
//!   certificate before initialisation, the node certificate after);
//! - the **cluster key** (EC P-256): the key of the cluster CSR, which issues the node
//!   certificates once the owner has signed it;
//! - its **audit key** (Ed25519): it signs the audit log's checkpoints.
//!
//! Each is stored as PKCS#8 DER sealed under the domain key (`DomainKey::seal`, AES-256-GCM)
//! in the store's Meta table under a `node/` key, bound to its record name, so no key byte is
//! ever on disk in plaintext. These records are node-local: they are not part of the HSM's
//! replicated state, and the node filters them out before it rebuilds that state.

use coffer_crypto::{KeyClass, KeyType, Module, PrivateKey};
use coffer_hsm::RecordKey;
use coffer_store::{Batch, BlobContext, DomainKey, Store};
use zeroize::Zeroizing;

use crate::pki::IdentityKey;

/// Prefix of the node-local records in the Meta table.
pub const NODE_META_PREFIX: &str = "node/";

const IDENTITY_KEY: &str = "node/identity_key";
const CLUSTER_KEY: &str = "node/cluster_key";
const AUDIT_KEY: &str = "node/audit_key";
const CLUSTER_ID: &str = "node/cluster_id";
const RAFT_ID: &str = "node/raft_id";
/// The cluster certificate a cloned node received, kept until its first snapshot brings the
/// cluster's state (which holds the certificate too), so that a restart in between still
/// presents the node certificate.
const JOINED_CLUSTER_CERT: &str = "node/joined_cluster_cert";

/// Why the node's keys could not be loaded or made.
#[derive(Debug, thiserror::Error)]
pub enum NodeKeyError {
    #[error("store: {0}")]
    Store(#[from] coffer_store::StoreError),
    #[error("crypto module: {0}")]
    Crypto(#[from] coffer_crypto::CryptoError),
    #[error("certificate key: {0}")]
    Pki(#[from] crate::pki::PkiError),
    #[error("the record {0} is corrupt: {1}")]
    Corrupt(&'static str, String),
}

/// The node's TLS keys and the cluster id, unsealed. (The audit key goes to the audit log,
/// its only user, and is not kept here.)
#[derive(Debug)]
pub struct NodeKeys {
    pub identity: IdentityKey,
    pub cluster: IdentityKey,
    /// `cluster-` and 16 hex digits, made on the first start.
    pub cluster_id: String,
    /// The node's id in the replication group: random, made on the first start, never zero.
    pub raft_id: u64,
}

impl NodeKeys {
    /// Unseals the node's keys from `store`, making (and sealing) any that is missing: all of
    /// them on a first start. Returns the keys and the audit key.
    pub fn load_or_create(
        store: &Store,
        domain: &DomainKey,
        module: &Module,
    ) -> Result<(NodeKeys, PrivateKey), NodeKeyError> {
        let mut batch = Batch::new();
        let identity = sealed_key(store, domain, module, IDENTITY_KEY, KeyType::Ec, &mut batch, || {
            Ok(IdentityKey::generate(module)?.pkcs8_der())
        })?;
        let cluster = sealed_key(store, domain, module, CLUSTER_KEY, KeyType::Ec, &mut batch, || {
            Ok(IdentityKey::generate(module)?.pkcs8_der())
        })?;
        let audit = sealed_key(store, domain, module, AUDIT_KEY, KeyType::Ed25519, &mut batch, || {
            let pair = module.generate_key_pair(&coffer_crypto::KeySpec::Ed25519)?;
            Ok(Zeroizing::new(pair.private.expose_pkcs8_der().to_vec()))
        })?;
        let cluster_id = match store.get(&RecordKey::Meta(CLUSTER_ID.into()))? {
            Some(bytes) => {
                String::from_utf8(bytes).map_err(|e| NodeKeyError::Corrupt(CLUSTER_ID, e.to_string()))?
            }
            None => {
                let id: String = module.random(8)?.iter().map(|b| format!("{b:02x}")).collect();
                let id = format!("cluster-{id}");
                batch.put(RecordKey::Meta(CLUSTER_ID.into()), id.clone().into_bytes());
                id
            }
        };
        let raft_id = match store.get(&RecordKey::Meta(RAFT_ID.into()))? {
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| NodeKeyError::Corrupt(RAFT_ID, format!("{} bytes, not 8", bytes.len())))?,
            None => {
                let mut id = 0u64;
                while id == 0 {
                    let bytes: [u8; 8] = module.random(8)?.as_slice().try_into().unwrap_or([0; 8]);
                    id = u64::from_be_bytes(bytes);
                }
                batch.put(RecordKey::Meta(RAFT_ID.into()), id.to_be_bytes().to_vec());
                id
            }
        };
        if !batch.is_empty() {
            store.commit(&batch)?;
        }
        let keys = NodeKeys {
            identity: IdentityKey::from_pkcs8(module, &identity)?,
            cluster: IdentityKey::from_pkcs8(module, &cluster)?,
            cluster_id,
            raft_id,
        };
        Ok((keys, module.private_key_from_pkcs8(&audit)?.private))
    }
}

impl NodeKeys {
    /// This node's keys once it is cloned into a cluster: its own identity and raft id, the
    /// cluster's key and id.
    pub fn cloned(
        &self,
        module: &Module,
        cluster_key_pkcs8: &[u8],
        cluster_id: &str,
    ) -> Result<NodeKeys, NodeKeyError> {
        Ok(NodeKeys {
            identity: IdentityKey::from_pkcs8(module, &self.identity.pkcs8_der())?,
            cluster: IdentityKey::from_pkcs8(module, cluster_key_pkcs8)?,
            cluster_id: cluster_id.to_owned(),
            raft_id: self.raft_id,
        })
    }
}

/// The node records of a node cloned into a cluster, for [`Store::adopt_domain_key`]: the
/// identity and audit keys opened with the `old` domain key and sealed under the `new` one,
/// the cluster key and id replaced by the cluster's, and the cluster certificate kept.
pub fn cloned_records(
    store: &Store,
    module: &Module,
    old: &DomainKey,
    new: &DomainKey,
    keys: &NodeKeys,
    cluster_cert_pem: &str,
) -> Result<Batch, NodeKeyError> {
    let mut batch = Batch::new();
    for (name, key_type) in [(IDENTITY_KEY, KeyType::Ec), (AUDIT_KEY, KeyType::Ed25519)] {
        let ctx = context(name, key_type);
        let blob = store
            .get(&RecordKey::Meta(name.into()))?
            .ok_or_else(|| NodeKeyError::Corrupt(name, "missing".into()))?;
        let pkcs8 = old.open(module, &ctx, &blob)?;
        batch.put(RecordKey::Meta(name.into()), new.seal(module, &ctx, &pkcs8)?);
    }
    let cluster = keys.cluster.pkcs8_der();
    batch.put(
        RecordKey::Meta(CLUSTER_KEY.into()),
        new.seal(module, &context(CLUSTER_KEY, KeyType::Ec), &cluster)?,
    );
    batch.put(RecordKey::Meta(CLUSTER_ID.into()), keys.cluster_id.clone().into_bytes());
    batch.put(RecordKey::Meta(JOINED_CLUSTER_CERT.into()), cluster_cert_pem.as_bytes().to_vec());
    Ok(batch)
}

/// The cluster certificate this node received when it was cloned, if it was.
pub fn joined_cluster_certificate(store: &Store) -> Result<Option<String>, NodeKeyError> {
    store
        .get(&RecordKey::Meta(JOINED_CLUSTER_CERT.into()))?
        .map(|bytes| {
            String::from_utf8(bytes).map_err(|e| NodeKeyError::Corrupt(JOINED_CLUSTER_CERT, e.to_string()))
        })
        .transpose()
}

/// The blob context of a node key: bound to its record name, so sealed keys cannot be swapped.
fn context(name: &'static str, key_type: KeyType) -> BlobContext<'static> {
    BlobContext { object_id: 0, class: KeyClass::Private, key_type, owner: name }
}

/// The PKCS#8 of the key stored under `name`, or a new one from `make`, sealed into `batch`.
fn sealed_key(
    store: &Store,
    domain: &DomainKey,
    module: &Module,
    name: &'static str,
    key_type: KeyType,
    batch: &mut Batch,
    make: impl FnOnce() -> Result<Zeroizing<Vec<u8>>, NodeKeyError>,
) -> Result<Zeroizing<Vec<u8>>, NodeKeyError> {
    let ctx = context(name, key_type);
    if let Some(blob) = store.get(&RecordKey::Meta(name.into()))? {
        return Ok(domain.open(module, &ctx, &blob)?);
    }
    let pkcs8 = make()?;
    batch.put(RecordKey::Meta(name.into()), domain.seal(module, &ctx, &pkcs8)?);
    Ok(pkcs8)
}

#[cfg(test)]
mod tests {
    use coffer_store::{KeyFileSeal, Table};

    use super::*;

    #[test]
    fn keys_are_made_once_sealed_and_reloaded() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let module = Module::power_on();
        let seal =
            KeyFileSeal::create(dir.path().join("seal.key"), &module).unwrap_or_else(|e| panic!("{e}"));
        let (store, domain) =
            Store::create(dir.path().join("store"), &seal, &module).unwrap_or_else(|e| panic!("{e}"));
        let (first, audit) =
            NodeKeys::load_or_create(&store, &domain, &module).unwrap_or_else(|e| panic!("{e}"));
        let (again, audit_again) =
            NodeKeys::load_or_create(&store, &domain, &module).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(first.identity.public_key(), again.identity.public_key());
        assert_eq!(first.cluster.public_key(), again.cluster.public_key());
        assert_eq!(audit.public_key(), audit_again.public_key());
        assert_eq!(first.cluster_id, again.cluster_id);
        assert_eq!(first.raft_id, again.raft_id);
        assert_ne!(first.raft_id, 0);
        assert_ne!(first.identity.public_key(), first.cluster.public_key());

        // What is stored is sealed: no record holds the PKCS#8 bytes.
        let pkcs8 = first.identity.pkcs8_der();
        let records = store.iter(Table::Meta).unwrap_or_default();
        assert_eq!(records.len(), 5, "three sealed keys, the cluster id and the raft id");
        assert!(records.iter().all(|(_, v)| !v.windows(pkcs8.len()).any(|w| w == pkcs8.as_slice())));
    }
}
