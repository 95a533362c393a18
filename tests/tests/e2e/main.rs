//! End-to-end tests of the hub over real mutual TLS. One test binary for all of them.

mod directory;
mod identity;
mod operator;
