//! Membership: adding an HSM to the cluster (CloudHSM's CreateHsm) by cloning, and removing
//! one (DeleteHsm).
//!
//! Two nodes take part, over the joining node's client port:
//!
//! - **The joining node** was started with `join = true`: it made its own identity key and
//!   raft id, founded no cluster, and presents its self-signed bootstrap certificate.
//!   [`Node::clone_offer`] hands out who it is (`CN_CLONE_TARGET_INIT`);
//!   [`Node::clone_install`] opens the cluster's secrets wrapped to its identity key, takes
//!   the domain key (re-sealing its own node keys under it, one store transaction), the
//!   cluster key and id, and presents a node certificate from the cluster key from then on
//!   (`CN_CLONE_TARGET_STAGE1`). It is then a node of the cluster with no state yet.
//! - **The existing node** serves an admin's `AddHsm` ([`Node::add_hsm`]): it connects to
//!   the joining node pinning the fingerprint the admin gave, takes its offer, wraps the
//!   secrets to it ([`crate::clone`], `CN_CLONE_SOURCE_STAGE1`), installs them, then adds it
//!   to the replication group as a learner (raft sends it the state, from a snapshot if the
//!   log has been purged) and, once it has caught up, as a voter.
//!
//! An AddHsm cut short after the install (no quorum, a catch-up past the call's bound) is
//! finished by running it again: the cloned joiner still offers itself until it votes, the
//! source reaches it by its cluster-issued certificate, and a second install of the same
//! cluster's secrets changes nothing.
//!
//! Membership changes run on the raft leader: a node that does not lead clones the new node
//! itself and hands the change to the leader over the peer port (`ChangeMembership`), so an
//! admin may ask any node.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::raft::network::PeerError;
use crate::raft::{Endpoints, MembershipChange, MembershipError, Raft};
use coffer_audit::Opcode;
use coffer_crypto::CryptoError;
use coffer_hsm::{ClusterState, HsmError};
use coffer_proto::v1;

use crate::clone::{self, CloneBinding, CloneError, CloneOffer, CloneSecrets, WrappedClone};
use crate::node::{Node, NodeError, node_presented};
use crate::node_keys;

/// How much of the call's bound (`limits.request_timeout_secs`) a membership change leaves
/// for its answer: the admin gets the change's own error, not the transport's timeout.
const MEMBERSHIP_ANSWER_MARGIN: Duration = Duration::from_secs(1);
/// How long the existing node waits for each call to the joining node.
const JOINER_CALL_TIMEOUT: Duration = Duration::from_secs(10);

impl From<CloneError> for NodeError {
    fn from(e: CloneError) -> Self {
        let crypto = match e {
            CloneError::Crypto(e) => e,
            CloneError::RecipientKey(_) => CryptoError::KeyTypeInconsistent(e.to_string()),
            CloneError::DoesNotOpen | CloneError::Malformed(_) => {
                CryptoError::WrappedKeyInvalid(e.to_string())
            }
        };
        NodeError::Hsm(HsmError::Crypto(crypto))
    }
}

/// A node added to the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedHsm {
    pub node_id: String,
    pub raft_id: u64,
    pub endpoints: Endpoints,
}

/// One member of the replication group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub raft_id: u64,
    pub endpoints: Endpoints,
    /// False for a learner.
    pub voter: bool,
    /// How long this node has failed to reach it (see [`Peers::unreachable_for`]).
    ///
    /// [`Peers::unreachable_for`]: crate::raft::network::Peers::unreachable_for
    pub unreachable_for: Option<Duration>,
}

/// A member this node has not reached for this long counts as unreachable in the metrics.
pub const UNREACHABLE_AFTER: Duration = Duration::from_secs(5);

impl Node {
    /// The replication group as this node knows it (empty before replication starts).
    pub fn members(&self) -> Vec<Member> {
        let Some(raft) = self.raft() else { return Vec::new() };
        let metrics = raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        membership
            .nodes()
            .map(|(id, node)| Member {
                raft_id: *id,
                endpoints: node.clone(),
                voter: voters.contains(id),
                unreachable_for: self.peers().unreachable_for(&node.peer_addr),
            })
            .collect()
    }

    /// CloneOffer: this node's id, raft id, identity public key and peer address, while it
    /// waits to be cloned into a cluster (`join = true`, never cloned). Audited as
    /// `CN_CLONE_TARGET_INIT`.
    pub fn clone_offer(&self) -> Result<CloneOffer, NodeError> {
        let result = self.offer();
        self.audit_clone_step(0, Opcode::CN_CLONE_TARGET_INIT, &result)?;
        result
    }

    fn offer(&self) -> Result<CloneOffer, NodeError> {
        self.joining()?;
        let keys = self.keys();
        Ok(CloneOffer {
            node_id: self.config().node_id.clone(),
            raft_id: keys.raft_id,
            identity_spki: keys.identity.public_key().spki_der().to_vec(),
            peer_addr: self.peer_addr().to_owned(),
            client_addr: self.client_addr().to_owned(),
        })
    }

    /// CloneInstall: opens the cluster's secrets wrapped to this node's identity key, checks
    /// that the cluster certificate is the cluster key's and chains to the trust anchor, and
    /// takes them. Everything that can be refused is checked before anything changes; the
    /// store switches to the cluster's domain key in one transaction. Audited as
    /// `CN_CLONE_TARGET_STAGE1`.
    pub fn clone_install(
        &self,
        wrapped: &WrappedClone,
        cluster_cert_pem: &str,
        trust_anchor_pem: &str,
    ) -> Result<(), NodeError> {
        let result = self.install(wrapped, cluster_cert_pem, trust_anchor_pem);
        self.audit_clone_step(0, Opcode::CN_CLONE_TARGET_STAGE1, &result)?;
        result
    }

    fn install(
        &self,
        wrapped: &WrappedClone,
        cluster_cert_pem: &str,
        trust_anchor_pem: &str,
    ) -> Result<(), NodeError> {
        let joining = self.joining()?;
        let module = self.module();
        let keys = self.keys();
        let spki = keys.identity.public_key().spki_der().to_vec();
        let binding = CloneBinding { recipient_spki: &spki, raft_id: keys.raft_id };
        let secrets = clone::unwrap(module, &keys.identity, &binding, wrapped)?;
        let cloned = keys
            .cloned(module, &secrets.cluster_key_pkcs8, &secrets.cluster_id)
            .map_err(|_| CloneError::Malformed("the cluster key does not parse"))?;
        if joining == Joining::Cloned {
            // Only a holder of this node's cluster key can wrap that key: the sender is of
            // the same cluster, running an interrupted AddHsm again. Nothing changes.
            let same = cloned.cluster_id == keys.cluster_id
                && cloned.cluster.public_key().spki_der() == keys.cluster.public_key().spki_der();
            return if same {
                Ok(())
            } else {
                Err(NodeError::Hsm(HsmError::ClusterState(
                    "this node has been cloned into another cluster already".into(),
                )))
            };
        }
        let cluster_spki = cloned.cluster.public_key().spki_der().to_vec();
        let valid = crate::pki::validate_initialization(&cluster_spki, cluster_cert_pem, trust_anchor_pem)?;
        self.require_expected_anchor(&valid.trust_anchor_pem)?;
        let (presented, peer_tls) =
            node_presented(&cloned, self.config(), &valid.cluster_cert_pem, self.anchors())?;
        // Two handles on the cluster's domain key: the store's and the HSM's.
        let for_hsm = coffer_store::DomainKey::import_from_clone(&secrets.domain.export_for_clone())
            .map_err(|e| NodeError::Internal(e.to_string()))?;
        {
            let mut hsm = self.hsm_mut();
            let journal = self.journal();
            let journal = journal
                .as_ref()
                .ok_or_else(|| HsmError::JournalFailed("the node is shutting down".into()))?;
            let store = journal.store();
            let records = node_keys::cloned_records(
                store,
                module,
                hsm.domain_key(),
                &secrets.domain,
                &cloned,
                &valid.cluster_cert_pem,
            )
            .map_err(|e| NodeError::Internal(e.to_string()))?;
            store.adopt_domain_key(self.seal(), module, &secrets.domain, &records).map_err(|e| {
                HsmError::JournalFailed(format!("the store cannot take the cluster's domain key: {e}"))
            })?;
            hsm.replace_domain_key(for_hsm)?;
        }
        self.switch_identity(cloned, presented, peer_tls);
        Ok(())
    }

    /// AddHsm: an admin's request to add the node at `address` (its client endpoint, whose
    /// bootstrap certificate has `fingerprint`). Clones the cluster's secrets to it, then
    /// adds it to the replication group: as a learner until it has caught up, then as a
    /// voter, through the leader.
    pub async fn add_hsm(
        &self,
        session: u64,
        address: &str,
        fingerprint: &str,
    ) -> Result<AddedHsm, NodeError> {
        if let Err(refused) = self.hsm().check_membership_change(session) {
            return Err(self.refused(session, Opcode::CN_CLONE_SOURCE_STAGE1, refused));
        }
        let raft =
            self.raft().ok_or_else(|| NodeError::Internal("replication has not started".into()))?.clone();
        let mut joiner = connect_pinned(address, fingerprint, &self.cluster_certificate()?)?;
        let offer = call(address, joiner.clone_offer(request(v1::CloneOfferRequest {}))).await?;
        let offer = CloneOffer {
            node_id: offer.node_id,
            raft_id: offer.raft_id,
            identity_spki: offer.identity_public_key,
            peer_addr: offer.peer_address,
            // A node that offers no client address is reached where the admin reached it.
            client_addr: if offer.client_address.is_empty() {
                address.to_owned()
            } else {
                offer.client_address
            },
        };
        // A learner is a node an interrupted AddHsm left behind: adding it again finishes.
        let members = raft.metrics().borrow().membership_config.membership().clone();
        if members.voter_ids().any(|v| v == offer.raft_id) || offer.raft_id == 0 {
            return Err(NodeError::Hsm(HsmError::ClusterState(format!(
                "the node at {address} (raft id {}) is a member of the cluster already",
                offer.raft_id
            ))));
        }
        if offer.peer_addr.is_empty() {
            return Err(NodeError::BadRequest(format!("the node at {address} offered no peer address")));
        }
        let result = self.wrap_for(&offer);
        self.audit_clone_step(session, Opcode::CN_CLONE_SOURCE_STAGE1, &result)?;
        let (wrapped, cluster_cert_pem, trust_anchor_pem) = result?;
        let install = v1::CloneInstallRequest {
            ephemeral_point: wrapped.ephemeral_point,
            iv: wrapped.iv,
            ciphertext: wrapped.ciphertext,
            cluster_certificate_pem: cluster_cert_pem,
            trust_anchor_pem,
        };
        call(address, joiner.clone_install(request(install))).await?;
        let endpoints = Endpoints { peer_addr: offer.peer_addr, client_addr: offer.client_addr };
        let change = MembershipChange::Add { raft_id: offer.raft_id, endpoints: endpoints.clone() };
        self.run_membership_change(&raft, &change).await.map_err(|e| match e {
            NodeError::NoQuorum(reason) => NodeError::NoQuorum(format!(
                "adding {}: {reason}; it holds the cluster's secrets now, so run AddHsm for it again \
                 once the cluster has a quorum",
                offer.node_id
            )),
            other => other,
        })?;
        Ok(AddedHsm { node_id: offer.node_id, raft_id: offer.raft_id, endpoints })
    }

    /// DeleteHsm: an admin's request to remove the member `raft_id` from the replication
    /// group. The last voter cannot be removed. The removed node keeps its store, which is
    /// useless anywhere else without its seal secret; stop it and delete its data directory.
    /// Runs through the leader.
    pub async fn delete_hsm(&self, session: u64, raft_id: u64) -> Result<(), NodeError> {
        self.hsm().check_membership_change(session)?;
        let raft =
            self.raft().ok_or_else(|| NodeError::Internal("replication has not started".into()))?.clone();
        let members = self.members();
        let member = members.iter().find(|m| m.raft_id == raft_id).ok_or_else(|| {
            NodeError::Hsm(HsmError::ClusterState(format!(
                "raft id {raft_id} is not a member of the cluster"
            )))
        })?;
        if member.voter && members.iter().filter(|m| m.voter).count() == 1 {
            return Err(NodeError::Hsm(HsmError::ClusterState(format!(
                "raft id {raft_id} is the cluster's last voting member; it cannot be removed"
            ))));
        }
        self.run_membership_change(&raft, &MembershipChange::Remove { raft_id }).await
    }

    /// The cluster's secrets wrapped to the offered node, with the cluster certificate and
    /// trust anchor.
    fn wrap_for(&self, offer: &CloneOffer) -> Result<(WrappedClone, String, String), NodeError> {
        let module = self.module();
        let recipient = module
            .public_key_from_spki(&offer.identity_spki)
            .map_err(|e| NodeError::from(CloneError::RecipientKey(e.to_string())))?;
        let keys = self.keys();
        let hsm = self.hsm();
        let cluster = hsm.state().cluster();
        let (Some(cert), Some(anchor)) = (cluster.certificate_pem.clone(), cluster.trust_anchor_pem.clone())
        else {
            return Err(not_initialised());
        };
        let secrets = CloneSecrets {
            domain: coffer_store::DomainKey::import_from_clone(&hsm.domain_key().export_for_clone())
                .map_err(|e| NodeError::Internal(e.to_string()))?,
            cluster_key_pkcs8: keys.cluster.pkcs8_der(),
            cluster_id: keys.cluster_id.clone(),
        };
        let binding = CloneBinding { recipient_spki: &offer.identity_spki, raft_id: offer.raft_id };
        Ok((clone::wrap(module, &recipient, &binding, &secrets)?, cert, anchor))
    }

    /// With `join_trust_anchor` set, a clone is taken only from the cluster of that owner:
    /// anyone who reaches a joining node's port could otherwise clone their own cluster to it.
    fn require_expected_anchor(&self, offered_pem: &str) -> Result<(), NodeError> {
        let Some(path) = &self.config().join_trust_anchor else { return Ok(()) };
        let expected = std::fs::read_to_string(path)
            .map_err(|e| NodeError::Internal(format!("join_trust_anchor {}: {e}", path.display())))?;
        let expected = crate::tls::certificates_from_pem(&expected)?;
        let offered = crate::tls::certificates_from_pem(offered_pem)?;
        if !expected.is_empty() && expected.first() == offered.first() {
            return Ok(());
        }
        Err(NodeError::Hsm(HsmError::NotPermitted(format!(
            "the clone comes from a cluster whose trust anchor is not the one in join_trust_anchor ({})",
            path.display()
        ))))
    }

    /// Where this node is in being added: waiting for a clone, or cloned by an AddHsm that
    /// did not finish (no state yet, or a learner). Any other node refuses cloning: a voter,
    /// and a node that has state but is no member (one removed by DeleteHsm).
    fn joining(&self) -> Result<Joining, NodeError> {
        if self.awaiting_clone()? {
            return Ok(Joining::AwaitingClone);
        }
        let raft_id = self.keys().raft_id;
        let (voter, learner) = self.raft().map_or((false, false), |raft| {
            let metrics = raft.metrics().borrow().clone();
            let membership = metrics.membership_config.membership();
            (membership.voter_ids().any(|v| v == raft_id), membership.learner_ids().any(|l| l == raft_id))
        });
        let state = self.cluster_state();
        let why = if !self.config().join {
            "this node was not started to join a cluster (join = false)".to_owned()
        } else if voter {
            format!("this node is a voting member of its cluster already ({})", state.name())
        } else if learner || state == ClusterState::Uninitialized {
            return Ok(Joining::Cloned);
        } else {
            "this node has left its cluster (DeleteHsm): stop it and delete its data directory to add it again"
                .to_owned()
        };
        Err(NodeError::Hsm(HsmError::ClusterState(why)))
    }

    /// The cluster certificate (PEM), which issues every node's certificate.
    fn cluster_certificate(&self) -> Result<String, NodeError> {
        self.hsm().state().cluster().certificate_pem.clone().ok_or_else(not_initialised)
    }

    /// Runs a membership change on the leader: here if this node leads, else handed to the
    /// leader over the peer port; while there is no leader (an election), asks again.
    /// The whole change, catch-up of a new node included, is bounded by the call's own bound.
    async fn run_membership_change(&self, raft: &Raft, change: &MembershipChange) -> Result<(), NodeError> {
        let bound = self.config().limits.request_timeout.saturating_sub(MEMBERSHIP_ANSWER_MARGIN);
        let bound = bound.max(MEMBERSHIP_ANSWER_MARGIN);
        let deadline = tokio::time::Instant::now() + bound;
        let late = || {
            NodeError::NoQuorum(format!("the membership change did not commit within {} s", bound.as_secs()))
        };
        loop {
            let metrics = raft.metrics().borrow().clone();
            let leader = metrics.current_leader;
            let outcome = if leader == Some(metrics.id) {
                // openraft waits for the commit (and a learner's catch-up) without bound.
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match tokio::time::timeout(left, crate::raft::change_membership(raft, change)).await {
                    Err(_) => Some(Err(late())),
                    Ok(Err(MembershipError::NotLeader)) => None,
                    Ok(done) => Some(done.map_err(|e| NodeError::NoQuorum(e.to_string()))),
                }
            } else if let Some(addr) = leader.and_then(|id| {
                metrics.membership_config.membership().get_node(&id).map(|n| n.peer_addr.clone())
            }) {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                match self.peers().change_membership(&addr, change, left).await {
                    Ok(done) => Some(done.map_err(NodeError::NoQuorum)),
                    // The leader moved on, or cannot be reached: look again.
                    Err(PeerError::Status { code: tonic::Code::FailedPrecondition, .. })
                    | Err(PeerError::Unreachable { .. }) => None,
                    Err(e) => Some(Err(NodeError::NoQuorum(e.to_string()))),
                }
            } else {
                None
            };
            if let Some(done) = outcome {
                return done;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(NodeError::NoQuorum(format!(
                    "no leader took the membership change within {} s",
                    bound.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Audits a cloning step with its result.
    fn audit_clone_step<T>(
        &self,
        session: u64,
        opcode: Opcode,
        result: &Result<T, NodeError>,
    ) -> Result<(), NodeError> {
        let stand_in;
        let response = match result {
            Ok(_) => Ok(()),
            Err(NodeError::Hsm(e)) => Err(e),
            Err(other) => {
                stand_in = HsmError::Crypto(CryptoError::Failed(other.to_string()));
                Err(&stand_in)
            }
        };
        let hsm = self.hsm();
        let mut journal = self.journal();
        let journal =
            journal.as_mut().ok_or_else(|| HsmError::JournalFailed("the node is shutting down".into()))?;
        Ok(hsm.record_clone_step(journal, session, opcode, response)?)
    }
}

/// See [`Node::joining`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Joining {
    AwaitingClone,
    Cloned,
}

fn not_initialised() -> NodeError {
    NodeError::Hsm(HsmError::ClusterState("the cluster is not initialised".into()))
}

fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(JOINER_CALL_TIMEOUT);
    request
}

async fn call<T>(
    address: &str,
    reply: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, NodeError> {
    match tokio::time::timeout(JOINER_CALL_TIMEOUT, reply).await {
        Ok(Ok(reply)) => Ok(reply.into_inner()),
        Ok(Err(status)) => {
            Err(NodeError::BadRequest(format!("the node at {address} answered: {}", status.message())))
        }
        Err(_) => Err(NodeError::BadRequest(format!(
            "the node at {address} did not answer within {} s",
            JOINER_CALL_TIMEOUT.as_secs()
        ))),
    }
}

/// A client of the joining node's gRPC service that accepts the certificate with
/// `fingerprint` (its bootstrap certificate, which the admin read off the node) or, once an
/// earlier AddHsm has cloned it, a certificate issued by this cluster's key (`cluster_cert_pem`).
fn connect_pinned(
    address: &str,
    fingerprint: &str,
    cluster_cert_pem: &str,
) -> Result<coffer_proto::HsmClient<tonic::transport::Channel>, NodeError> {
    let bad = |reason: String| NodeError::BadRequest(format!("address {address:?}: {reason}"));
    let (host, port) = address.rsplit_once(':').ok_or_else(|| bad("not host:port".into()))?;
    let port: u16 = port.parse().map_err(|_| bad(format!("bad port {port:?}")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let trust = coffer_client::ServerTrust::FingerprintOrAnchorPem {
        fingerprint,
        anchor_pem: cluster_cert_pem.as_bytes(),
    };
    let tls = coffer_client::rustls_client_config(trust, None)
        .map_err(|e| NodeError::BadRequest(format!("fingerprint {fingerprint:?}: {e}")))?;
    let connector = coffer_client::NodeConnector::new(host, port, tls).map_err(|e| bad(e.to_string()))?;
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .map_err(|e| bad(e.to_string()))?
        .connect_timeout(JOINER_CALL_TIMEOUT);
    Ok(coffer_proto::HsmClient::new(endpoint.connect_with_connector_lazy(connector)))
}
