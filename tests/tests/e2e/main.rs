//! End-to-end tests of the hub over real mutual TLS. One test binary for all of them.

mod audit;
mod cases;
mod council;
mod council_pack;
mod directory;
mod durability;
mod feed;
mod identity;
mod operator;
mod referrals;
mod scale_out;
mod sealing;
