//! Compiles the tsunagu.v1 contract with protox (no system protoc) and writes the descriptor set for reflection.

use std::path::PathBuf;

use protox::prost::Message as _;

const PROTO_DIR: &str = "tsunagu/v1";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(PROTO_DIR)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "proto"))
        .collect();
    files.sort();
    // protox reads the files itself, so cargo must be told which ones to watch.
    println!("cargo:rerun-if-changed={PROTO_DIR}");
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }

    let descriptors = protox::compile(&files, ["."])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("tsunagu_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors.clone())?;

    // The hub's EventService again, server only, sending feed events it encoded once and kept
    // (see src/served.rs): every message is the one above, except the two it sends.
    let mut events_only = descriptors;
    events_only
        .file
        .retain(|file| file.name() == "tsunagu/v1/events.proto");
    let served = out_dir.join("served");
    std::fs::create_dir_all(&served)?;
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .out_dir(&served)
        .extern_path(".tsunagu.v1", "crate::v1")
        .extern_path(".tsunagu.v1.FeedEvent", "crate::served::EncodedFeedEvent")
        .extern_path(
            ".tsunagu.v1.ListEventsResponse",
            "crate::served::ListEventsPage",
        )
        .compile_fds(events_only)?;
    Ok(())
}
