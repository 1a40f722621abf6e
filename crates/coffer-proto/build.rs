//! Compiles `proto/coffer/hsm/v1/*.proto` and `proto/coffer/peer/v1/*.proto` with protox, a pure-Rust protobuf compiler, so that
//! building needs no `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = ["coffer/hsm/v1/hsm.proto", "coffer/peer/v1/peer.proto"];
    let descriptors = protox::compile(files, ["proto"])?;
    for file in files {
        println!("cargo:rerun-if-changed=proto/{file}");
    }
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Callers bring their own channel (TLS via rustls), so no connect() helper.
        .build_transport(false)
        .compile_fds(descriptors)?;
    Ok(())
}
