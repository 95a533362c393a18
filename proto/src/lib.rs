//! The tsunagu.v1 gRPC contract: generated messages, clients and servers, and the descriptor set.

#![allow(clippy::doc_lazy_continuation, clippy::large_enum_variant)]

/// Version 1 of the public contract (package `tsunagu.v1`).
pub mod v1 {
    tonic::include_proto!("tsunagu.v1");
}

pub mod audit_head;
pub mod served;

/// The encoded `FileDescriptorSet` of every tsunagu.v1 file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("tsunagu_descriptor");
