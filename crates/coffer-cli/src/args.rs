//! The command tree, as cloudhsm-cli names it (inventory §5.4 and §11), parsed with clap.
//!
//! The same tree serves single-command mode (`coffer key list`) and each line of the
//! interactive shell, so a script moves between the two unchanged.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `coffer`: manage and use a Coffer HSM cluster.
#[derive(Debug, Parser)]
#[command(name = "coffer", version, about, long_about = None)]
pub struct Cli {
    /// The client configuration file (node endpoints, trust anchor).
    #[arg(long, global = true, env = "COFFER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Cluster lifecycle and client mutual TLS.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Log in to the cluster (the password is prompted for, or read from a file or variable).
    Login(LoginArgs),
    /// Log out.
    Logout,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Generate, find, change, share, wrap and delete keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Sign, verify, encrypt, decrypt, digest and HMAC.
    #[command(subcommand)]
    Crypto(CryptoCommand),
    /// Random bytes from the HSM.
    Random(RandomArgs),
    /// Verify or read a node's audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Start a local development cluster and keep it running until Ctrl-C.
    ///
    /// Makes DIR, a local development CA (not for production), the node's configuration and
    /// seal key; starts cofferd (found next to coffer); initialises and activates the cluster;
    /// writes DIR/client.toml. Run again on the same DIR, it restarts the same cluster.
    /// COFFER_DEV_FAST_KDF=1 lowers the node's PBKDF2 work factor to its minimum: for tests
    /// and development only, never for a cluster holding real keys.
    Up(UpArgs),
    /// An interactive shell that keeps the session and login across commands.
    Interactive,
}

/// Where a password comes from when it is not typed at the prompt.
#[derive(Debug, Clone, Default, Args)]
pub struct PasswordArgs {
    /// Read the password from this file (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "password_env")]
    pub password_file: Option<PathBuf>,
    /// Read the password from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
}

// ------------------------------------------------------------------------------------- cluster

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// The cluster's state and basic facts (no login needed).
    HsmInfo,
    /// The cluster's certificate signing request, to sign with your CA.
    Csr {
        /// Write the CSR to this file as well.
        #[arg(long, value_name = "FILE")]
        path: Option<PathBuf>,
    },
    /// Hand the signed cluster certificate and your CA's certificate to the cluster.
    Initialize {
        /// The cluster certificate your CA signed (PEM).
        #[arg(long, value_name = "FILE")]
        signed_cert: PathBuf,
        /// Your CA's certificate, the trust anchor (PEM).
        #[arg(long, value_name = "FILE")]
        trust_anchor: PathBuf,
    },
    /// Log in as the unactivated admin (admin/password) and set the admin password.
    Activate(PasswordArgs),
    /// Client mutual TLS.
    #[command(subcommand)]
    Mtls(MtlsCommand),
    /// Add an HSM to the cluster (CloudHSM's CreateHsm), as an admin.
    ///
    /// The new node must be running with `join = true`: it prints its bootstrap certificate
    /// fingerprint when it starts. The node you are logged in to clones the cluster's keys to
    /// it, wrapped to its identity key, and adds it to the replication group once it has
    /// caught up.
    AddHsm {
        /// The new node's client endpoint (host:port).
        #[arg(long, value_name = "HOST:PORT")]
        address: String,
        /// The fingerprint of the new node's bootstrap certificate (SHA256:…).
        #[arg(long, value_name = "SHA256:…")]
        fingerprint: String,
    },
    /// Remove an HSM from the cluster (CloudHSM's DeleteHsm), as an admin, by the raft id
    /// `cluster hsm-info` lists. Stop the removed node afterwards and delete its data.
    DeleteHsm {
        /// The member's raft id.
        #[arg(long, value_name = "ID")]
        raft_id: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum MtlsCommand {
    /// Register a CA whose client certificates the cluster accepts.
    RegisterTrustAnchor {
        /// The CA certificate (PEM).
        #[arg(long, value_name = "FILE")]
        path: PathBuf,
    },
    /// Remove a registered client trust anchor.
    DeregisterTrustAnchor {
        /// Its SHA-256 fingerprint, as `list-trust-anchors` shows it.
        #[arg(long)]
        fingerprint: String,
    },
    /// Require (or stop requiring) a client certificate.
    SetEnforcement {
        #[arg(long, conflicts_with = "disable", required_unless_present = "disable")]
        enable: bool,
        #[arg(long)]
        disable: bool,
    },
    /// The registered client trust anchors.
    ListTrustAnchors,
}

// ------------------------------------------------------------------------------ login and users

/// A role a person logs in with or is created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Admin,
    CryptoUser,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    #[arg(long)]
    pub username: String,
    #[arg(long, value_enum)]
    pub role: RoleArg,
    #[command(flatten)]
    pub password: PasswordArgs,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (admin only); the password is prompted for twice.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        #[command(flatten)]
        password: PasswordArgs,
    },
    /// Delete a user (admin only).
    Delete {
        #[arg(long)]
        username: String,
    },
    /// List the users (no login needed).
    List,
    /// Change a user's password (your own, or anyone's as an admin).
    ChangePassword {
        #[arg(long)]
        username: String,
        #[command(flatten)]
        password: PasswordArgs,
    },
}

// ---------------------------------------------------------------------------------------- keys

/// Selects keys: `key-reference=0x…` (the handle), `attr.label=…`, `attr.id=…`,
/// `attr.key-type=…`, `attr.class=…` or any other `attr.NAME=VALUE`.
#[derive(Debug, Clone, Default, Args)]
pub struct FilterArgs {
    #[arg(long, num_args = 1.., value_name = "FILTER")]
    pub filter: Vec<String>,
}

/// Attributes set on a new key, `NAME=VALUE` (e.g. `encrypt=true decrypt=true id=0x01`).
#[derive(Debug, Clone, Default, Args)]
pub struct AttributeArgs {
    #[arg(long, num_args = 1.., value_name = "NAME=VALUE")]
    pub attributes: Vec<String>,
    /// A session key: it lives on one node, in memory, until the session ends.
    #[arg(long)]
    pub session: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a secret key.
    #[command(subcommand)]
    GenerateSymmetric(GenerateSymmetric),
    /// Generate a key pair.
    #[command(subcommand)]
    GenerateAsymmetricPair(GenerateAsymmetricPair),
    /// List the keys you can see.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Show every readable attribute.
        #[arg(long)]
        verbose: bool,
    },
    /// Read one attribute of one key.
    GetAttribute {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, value_name = "NAME")]
        attribute: String,
    },
    /// Change one attribute of one key.
    SetAttribute {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, value_name = "NAME")]
        name: String,
        #[arg(long, value_name = "VALUE")]
        value: String,
    },
    /// Let another crypto user use a key you own.
    Share {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long)]
        username: String,
    },
    /// Stop sharing a key.
    Unshare {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long)]
        username: String,
    },
    /// Delete a key you own.
    Delete {
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Wrap (export, encrypted) a key under another key.
    Wrap(WrapArgs),
    /// Unwrap (import) a wrapped key.
    Unwrap(UnwrapArgs),
    /// Import a key from a PEM file.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Write a public key to a PEM file.
    ExportPublic {
        #[command(flatten)]
        filter: FilterArgs,
        #[arg(long, value_name = "FILE")]
        path: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum GenerateSymmetric {
    /// An AES key of 16, 24 or 32 bytes.
    Aes {
        #[arg(long)]
        label: String,
        #[arg(long)]
        key_length_bytes: u32,
        #[command(flatten)]
        attributes: AttributeArgs,
    },
    /// A generic secret (HMAC) key of 1 to 800 bytes.
    GenericSecret {
        #[arg(long)]
        label: String,
        #[arg(long)]
        key_length_bytes: u32,
        #[command(flatten)]
        attributes: AttributeArgs,
    },
}

/// Labels and attributes of the two halves of a new key pair.
#[derive(Debug, Clone, Args)]
pub struct PairArgs {
    #[arg(long)]
    pub public_label: String,
    #[arg(long)]
    pub private_label: String,
    /// Attributes of the public key, `NAME=VALUE`.
    #[arg(long, num_args = 1.., value_name = "NAME=VALUE")]
    pub public_attributes: Vec<String>,
    /// Attributes of the private key, `NAME=VALUE`.
    #[arg(long, num_args = 1.., value_name = "NAME=VALUE")]
    pub private_attributes: Vec<String>,
    /// Session keys: they live on one node, in memory, until the session ends.
    #[arg(long)]
    pub session: bool,
}

#[derive(Debug, Subcommand)]
pub enum GenerateAsymmetricPair {
    /// An RSA key pair (2048, 3072 or 4096 bits; public exponent 65537).
    Rsa {
        #[arg(long)]
        modulus_size_bits: u32,
        #[arg(long, default_value_t = 65537)]
        public_exponent: u64,
        #[command(flatten)]
        pair: PairArgs,
    },
    /// An EC key pair.
    Ec {
        #[arg(long, value_enum)]
        curve: CurveArg,
        #[command(flatten)]
        pair: PairArgs,
    },
    /// An Ed25519 key pair.
    Ed25519 {
        #[command(flatten)]
        pair: PairArgs,
    },
}

/// Curves, under cloudhsm-cli's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CurveArg {
    #[value(alias = "secp256r1")]
    Prime256v1,
    Secp384r1,
    Secp521r1,
    Secp256k1,
}

/// Key-wrapping mechanisms, under cloudhsm-cli's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WrapMechanismArg {
    /// AES-GCM; the IV is generated and reported, give it back to unwrap.
    AesGcm,
    /// AES key wrap without padding (RFC 3394).
    AesNoPad,
    /// AES key wrap with padding (RFC 5649).
    AesZeroPad,
    /// RSA-OAEP with MGF1 on the same hash.
    RsaOaep,
}

#[derive(Debug, Args)]
pub struct WrapArgs {
    #[arg(value_enum)]
    pub mechanism: WrapMechanismArg,
    /// Selects the wrapping key.
    #[arg(long, num_args = 1.., required = true, value_name = "FILTER")]
    pub wrapping_filter: Vec<String>,
    /// Selects the key to wrap.
    #[arg(long, num_args = 1.., required = true, value_name = "FILTER")]
    pub payload_filter: Vec<String>,
    /// RSA-OAEP's hash.
    #[arg(long, value_enum, default_value = "sha256")]
    pub hash_function: HashArg,
    /// Write the wrapped key to this file.
    #[arg(long, value_name = "FILE")]
    pub path: Option<PathBuf>,
}

/// What an unwrapped or imported key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyTypeClassArg {
    Aes,
    GenericSecret,
    RsaPrivate,
    EcPrivate,
    Ed25519Private,
    RsaPublic,
    EcPublic,
    Ed25519Public,
}

#[derive(Debug, Args)]
pub struct UnwrapArgs {
    #[arg(value_enum)]
    pub mechanism: WrapMechanismArg,
    /// Selects the unwrapping key.
    #[arg(long, num_args = 1.., required = true, value_name = "FILTER")]
    pub unwrapping_filter: Vec<String>,
    /// The wrapped key, as `key wrap --path` wrote it.
    #[arg(long, value_name = "FILE")]
    pub data_path: PathBuf,
    #[arg(long, value_enum)]
    pub key_type_class: KeyTypeClassArg,
    #[arg(long)]
    pub label: String,
    /// The IV `key wrap aes-gcm` reported (hex).
    #[arg(long, value_name = "HEX")]
    pub iv: Option<String>,
    /// RSA-OAEP's hash.
    #[arg(long, value_enum, default_value = "sha256")]
    pub hash_function: HashArg,
    #[command(flatten)]
    pub attributes: AttributeArgs,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A PKCS#8 private key or a SubjectPublicKeyInfo public key, PEM.
    Pem {
        #[arg(long, value_name = "FILE")]
        path: PathBuf,
        #[arg(long)]
        label: String,
        #[arg(long, value_enum)]
        key_type_class: KeyTypeClassArg,
        #[command(flatten)]
        attributes: AttributeArgs,
    },
}

// -------------------------------------------------------------------------------------- crypto

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HashArg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignMechanismArg {
    RsaPkcs,
    RsaPkcsPss,
    Ecdsa,
    Ed25519,
}

/// Whether `--data` is the message or already its digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum DataType {
    #[default]
    Raw,
    Digest,
}

/// The data a command works on: a file, or text given inline.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct DataArgs {
    #[arg(long, value_name = "FILE")]
    pub data_path: Option<PathBuf>,
    /// The data as text (its UTF-8 bytes).
    #[arg(long, value_name = "TEXT")]
    pub data: Option<String>,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    #[arg(value_enum)]
    pub mechanism: SignMechanismArg,
    #[arg(long, num_args = 1.., required = true, value_name = "FILTER")]
    pub key_filter: Vec<String>,
    #[arg(long, value_enum, default_value = "sha256")]
    pub hash_function: HashArg,
    #[command(flatten)]
    pub data: DataArgs,
    #[arg(long, value_enum, default_value = "raw")]
    pub data_type: DataType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CipherMechanismArg {
    /// AES-GCM; encrypting without --iv generates one and reports it.
    AesGcm,
    /// AES-CBC with PKCS#7 padding.
    AesCbc,
    /// AES-CBC without padding (block-aligned data).
    AesCbcNoPad,
    /// AES-CTR with a 128-bit counter block.
    AesCtr,
    /// RSA-OAEP with MGF1 on the same hash.
    RsaOaep,
    /// RSA PKCS #1 v1.5.
    RsaPkcs,
}

#[derive(Debug, Args)]
pub struct CipherArgs {
    #[arg(value_enum)]
    pub mechanism: CipherMechanismArg,
    #[arg(long, num_args = 1.., required = true, value_name = "FILTER")]
    pub key_filter: Vec<String>,
    #[command(flatten)]
    pub data: DataArgs,
    /// IV (AES-GCM 12 bytes, AES-CBC 16) or counter block (AES-CTR 16), hex.
    #[arg(long, value_name = "HEX")]
    pub iv: Option<String>,
    /// AES-GCM additional authenticated data, as text.
    #[arg(long, value_name = "TEXT")]
    pub aad: Option<String>,
    /// RSA-OAEP's hash.
    #[arg(long, value_enum, default_value = "sha256")]
    pub hash_function: HashArg,
    /// Write the output to this file (otherwise it is printed, base64).
    #[arg(long, value_name = "FILE")]
    pub output_path: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum CryptoCommand {
    /// Sign data.
    Sign {
        #[command(flatten)]
        sign: SignArgs,
        /// Write the signature to this file.
        #[arg(long, value_name = "FILE")]
        output_path: Option<PathBuf>,
    },
    /// Verify a signature.
    Verify {
        #[command(flatten)]
        sign: SignArgs,
        #[arg(long, value_name = "FILE")]
        signature_path: PathBuf,
    },
    /// Encrypt data.
    Encrypt(CipherArgs),
    /// Decrypt data.
    Decrypt(CipherArgs),
    /// Hash data.
    Digest {
        #[arg(long, value_enum, default_value = "sha256")]
        hash_function: HashArg,
        #[command(flatten)]
        data: DataArgs,
    },
    /// HMAC data with a generic secret key.
    Hmac {
        #[arg(long, num_args = 1.., required = true, value_name = "FILTER")]
        key_filter: Vec<String>,
        #[arg(long, value_enum, default_value = "sha256")]
        hash_function: HashArg,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Args)]
pub struct RandomArgs {
    /// How many bytes (1 to 65536).
    #[arg(long)]
    pub length: u32,
}

// --------------------------------------------------------------------------------------- audit

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check a whole audit log: hash chain, sequence and signed checkpoints.
    Verify {
        file: PathBuf,
        /// The node's audit public key (PEM or DER); by default the `audit-public.pem` the
        /// node writes beside its log.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// Accept a log whose node is still running (no closing checkpoint yet).
        #[arg(long)]
        allow_open_tail: bool,
    },
    /// The last entries of an audit log (not verified).
    Tail {
        file: PathBuf,
        #[arg(short = 'n', long = "lines", default_value_t = 10)]
        lines: usize,
    },
}

// ------------------------------------------------------------------------------------------ up

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The local cluster's directory.
    #[arg(long, default_value = "coffer-local", value_name = "DIR")]
    pub dir: PathBuf,
    /// How many nodes (1 to 7): the first founds the cluster, the others are added to it.
    #[arg(long, default_value_t = 1)]
    pub nodes: u32,
    /// The admin password for activation; by default one is generated into DIR/admin-password.
    #[arg(long, value_name = "FILE")]
    pub admin_password_file: Option<PathBuf>,
    /// Where the node listens.
    #[arg(long, default_value = "127.0.0.1:2223", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// Where the node serves /health and /metrics (default: the port after --listen's).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// With --listen on 0.0.0.0 or ::, the address the nodes give their peers and clients
    /// (and put in their certificates); loopback when not given.
    #[arg(long, value_name = "IP")]
    pub advertise_ip: Option<std::net::IpAddr>,
    /// Replace a node that stays down this many seconds with a new one (3 nodes or more; 0:
    /// never, and a node exiting stops `coffer up`).
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub replace_after: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("coffer").chain(args.iter().copied()))
    }

    #[test]
    fn the_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn cloudhsm_cli_command_lines_parse() {
        let cli =
            parse(&["key", "generate-symmetric", "aes", "--label", "k", "--key-length-bytes", "32"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Key(KeyCommand::GenerateSymmetric(GenerateSymmetric::Aes {
                key_length_bytes: 32,
                ..
            })))
        ));
        let cli =
            parse(&["key", "list", "--filter", "attr.label=a", "key-reference=0x10", "--verbose"]).unwrap();
        let Some(Command::Key(KeyCommand::List { filter, verbose })) = cli.command else { panic!() };
        assert_eq!(filter.filter, ["attr.label=a", "key-reference=0x10"]);
        assert!(verbose);
        let cli = parse(&["login", "--username", "alice", "--role", "crypto-user"]).unwrap();
        let Some(Command::Login(login)) = cli.command else { panic!() };
        assert_eq!(login.role, RoleArg::CryptoUser);
        let cli = parse(&[
            "key",
            "generate-asymmetric-pair",
            "ec",
            "--curve",
            "secp256r1",
            "--public-label",
            "p",
            "--private-label",
            "q",
        ])
        .unwrap();
        let Some(Command::Key(KeyCommand::GenerateAsymmetricPair(GenerateAsymmetricPair::Ec {
            curve, ..
        }))) = cli.command
        else {
            panic!()
        };
        assert_eq!(curve, CurveArg::Prime256v1);
    }

    #[test]
    fn data_is_a_file_or_text_but_not_both_nor_neither() {
        let base = ["crypto", "digest", "--hash-function", "sha256"];
        assert!(parse(&[&base[..], &["--data", "x"]].concat()).is_ok());
        assert!(parse(&[&base[..], &["--data-path", "f"]].concat()).is_ok());
        assert!(parse(&base).is_err());
        assert!(parse(&[&base[..], &["--data", "x", "--data-path", "f"]].concat()).is_err());
    }

    #[test]
    fn passwords_are_never_an_argument() {
        let e = parse(&["login", "--username", "a", "--role", "admin", "--password", "x"]).unwrap_err();
        assert_eq!(e.kind(), clap::error::ErrorKind::UnknownArgument);
        assert!(
            parse(&[
                "user",
                "create",
                "--username",
                "a",
                "--role",
                "admin",
                "--password-file",
                "f",
                "--password-env",
                "V"
            ])
            .is_err()
        );
    }

    #[test]
    fn enforcement_needs_exactly_one_switch() {
        assert!(parse(&["cluster", "mtls", "set-enforcement", "--enable"]).is_ok());
        assert!(parse(&["cluster", "mtls", "set-enforcement", "--disable"]).is_ok());
        assert!(parse(&["cluster", "mtls", "set-enforcement"]).is_err());
        assert!(parse(&["cluster", "mtls", "set-enforcement", "--enable", "--disable"]).is_err());
    }

    #[test]
    fn no_arguments_is_the_shell() {
        assert!(parse(&[]).unwrap().command.is_none());
    }
}
