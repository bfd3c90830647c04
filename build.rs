//! Compiles `proto/certgate/v1/admin.proto` (the `certgate.v1` read API) with protox, a
//! pure-Rust protobuf compiler, so building certgate needs no system `protoc`.
//!
//! The encoded descriptor set is written next to the generated code: the server
//! registers it with gRPC reflection so `grpcurl` works without the .proto file.
//! `compile_fds` does not write it (prost-build only does when it runs protoc itself),
//! hence the explicit write.

use std::path::PathBuf;

use protox::prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("certgate_descriptor.bin");

    let fds = protox::compile(["certgate/v1/admin.proto"], ["proto"])?;
    std::fs::write(&descriptor_path, fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .file_descriptor_set_path(&descriptor_path)
        .compile_fds(fds)?;
    Ok(())
}
