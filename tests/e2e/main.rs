//! End-to-end tests: the real host, over real sockets, against guest
//! components compiled from source by the harness.

mod harness;

mod admin;
mod cache;
mod cli;
mod cluster;
mod config;
mod drain;
mod hosted;
mod http3;
mod images;
mod kubernetes;
mod kv;
mod languages;
mod limits;
mod many;
mod observability;
mod oci;
mod openapi;
mod outbound;
mod reload;
mod reuse;
mod routing;
mod schedules;
mod tenants;
mod warm;
mod whole;
