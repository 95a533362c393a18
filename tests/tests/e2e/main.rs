//! End-to-end tests of the hub over real mutual TLS. One test binary for all of them.

mod audit;
mod cancellation;
mod cases;
mod console;
mod council;
mod council_pack;
mod deadlines;
mod directory;
mod durability;
mod failover;
mod feed;
mod identity;
mod operator;
mod ops;
mod outcomes;
mod pg_locks;
mod readme;
mod referrals;
mod reseal;
mod scale_out;
mod sealing;
mod traces;
mod transfer;
