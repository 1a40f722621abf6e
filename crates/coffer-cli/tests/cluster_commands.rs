//! The cluster lifecycle by hand, as an owner with their own CA would do it, against a
//! `cofferd` started directly: `cluster csr`, sign it, `cluster initialize`, `cluster
//! activate`, and client mutual-TLS trust anchors.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use coffer_cli::up::{Layout, NodePorts, node_config};
use coffer_crypto::Module;
use coffer_node::pki::DevCa;
use common::{As, coffer_bin, fails, free_port, ok};

/// A `cofferd` child, stopped with SIGTERM when dropped.
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts cofferd on `layout` and returns it with the bootstrap fingerprint it printed.
fn start_node(layout: &Layout) -> (Node, String) {
    std::fs::create_dir_all(layout.seal_dir()).unwrap();
    std::fs::set_permissions(layout.seal_dir(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let listen: std::net::SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let metrics = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let ports = NodePorts { listen, metrics, peer: "127.0.0.1:0".parse().unwrap(), advertise_ip: None };
    std::fs::write(layout.node_config(), node_config(layout, &ports, true)).unwrap();
    let mut child = Command::new(coffer_bin().with_file_name("cofferd"))
        .arg("--config")
        .arg(layout.node_config())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start cofferd");
    let stdout = child.stdout.take().unwrap();
    let node = Node(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut fingerprint = None;
    loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("cofferd: ready");
        if let Some(fp) = line.strip_prefix("cofferd: bootstrap certificate fingerprint ") {
            fingerprint = Some(fp.to_owned());
        }
        if line == "cofferd: ready" {
            std::thread::spawn(move || while rx.recv().is_ok() {});
            let config = format!("endpoints = [\"{listen}\"]\n");
            std::fs::write(layout.client_config(), config).unwrap();
            return (node, fingerprint.expect("a bootstrap fingerprint"));
        }
    }
}

fn write_client(layout: &Layout, trust: &str) {
    let text = std::fs::read_to_string(layout.client_config()).unwrap();
    let endpoints = text.lines().find(|l| l.starts_with("endpoints")).unwrap().to_owned();
    std::fs::write(layout.client_config(), format!("{endpoints}\n{trust}\n")).unwrap();
}

#[test]
fn an_owner_initialises_and_activates_a_cluster_with_the_cluster_commands() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout { dir: tmp.path().join("c") };
    std::fs::create_dir_all(&layout.dir).unwrap();
    let (_node, fingerprint) = start_node(&layout);
    let config = layout.client_config();
    let p = |name: &str| tmp.path().join(name).display().to_string();

    // Without trust settings the client refuses to talk at all.
    fails(&config, None, &["cluster", "hsm-info"]);
    write_client(&layout, &format!("server_fingerprint = \"{fingerprint}\""));
    let info = ok(&config, None, &["cluster", "hsm-info"]);
    assert_eq!(info["state"], "UNINITIALIZED", "{info}");

    let csr = ok(&config, None, &["cluster", "csr", "--path", &p("cluster.csr")]);
    assert!(csr["csr"].as_str().unwrap().contains("BEGIN CERTIFICATE REQUEST"));
    let module = Module::power_on();
    let ca = DevCa::create(&module, "owner test CA").unwrap();
    let cert = ca.sign_csr(&std::fs::read_to_string(p("cluster.csr")).unwrap()).unwrap();
    std::fs::write(p("cluster.crt"), cert).unwrap();
    std::fs::write(p("customerCA.crt"), ca.cert_pem()).unwrap();
    let bad = fails(
        &config,
        None,
        &["cluster", "initialize", "--signed-cert", &p("cluster.csr"), "--trust-anchor", &p("nope.crt")],
    );
    assert!(bad["data"].as_str().unwrap().contains("nope.crt"), "{bad}");
    let info = ok(
        &config,
        None,
        &[
            "cluster",
            "initialize",
            "--signed-cert",
            &p("cluster.crt"),
            "--trust-anchor",
            &p("customerCA.crt"),
        ],
    );
    assert_eq!(info["state"], "INITIALIZED", "{info}");

    // From now on the node chains to the owner's CA, and the client trusts only that.
    write_client(&layout, &format!("trust_anchor = \"{}\"", p("customerCA.crt")));
    std::fs::write(p("admin.pw"), "owner-Pa55word\n").unwrap();
    let activated = ok(&config, None, &["cluster", "activate", "--password-file", &p("admin.pw")]);
    assert_eq!(activated["cluster"]["state"], "ACTIVE", "{activated}");
    fails(&config, None, &["cluster", "activate", "--password-file", &p("admin.pw")]);

    // Client trust anchors for mutual TLS (admin only); enforcement is left off, or this
    // client (which has no certificate) would lock itself out.
    let admin = || Some(As { role: "admin", user: "admin", password: "owner-Pa55word" });
    let other_ca = DevCa::create(&module, "client CA").unwrap();
    std::fs::write(p("client-ca.crt"), other_ca.cert_pem()).unwrap();
    let listed =
        ok(&config, admin(), &["cluster", "mtls", "register-trust-anchor", "--path", &p("client-ca.crt")]);
    let anchors = listed["trust_anchors"].as_array().unwrap();
    assert_eq!(anchors.len(), 1, "{listed}");
    let fp = anchors[0]["fingerprint"].as_str().unwrap().to_owned();
    let listed = ok(&config, admin(), &["cluster", "mtls", "list-trust-anchors"]);
    assert_eq!(listed["enforced"], false);
    ok(&config, admin(), &["cluster", "mtls", "deregister-trust-anchor", "--fingerprint", &fp]);
    let listed = ok(&config, admin(), &["cluster", "mtls", "list-trust-anchors"]);
    assert_eq!(listed["trust_anchors"].as_array().map(Vec::len), Some(0));
    let cu = fails(&config, None, &["cluster", "mtls", "list-trust-anchors"]);
    assert!(cu["data"].as_str().unwrap().contains("needs a login"), "{cu}");
    assert!(Path::new(&p("cluster.csr")).is_file());
}

#[test]
fn usage_errors_are_json_with_a_non_zero_status() {
    let output = Command::new(coffer_bin()).args(["key", "generate-symmetric", "des"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["error_code"], 1);
    assert!(json["data"].as_str().unwrap().contains("des"), "{json}");
    let output = Command::new(coffer_bin())
        .args(["cluster", "hsm-info"])
        .env_remove("COFFER_CONFIG")
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(json["data"].as_str().unwrap().contains("COFFER_CONFIG"), "{json}");
    assert_eq!(output.status.code(), Some(1));
}
