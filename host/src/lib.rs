//! wasmfn serves a directory of WebAssembly HTTP components as one API:
//! each function mounted on its routes, each with its own limits enforced
//! inside the sandbox.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use wasmfn::server::{HostConfig, RunningHost};
//!
//! let host = RunningHost::start(HostConfig::new("functions"), "127.0.0.1:0".parse()?).await?;
//! println!("serving on http://{}", host.addr);
//! host.stop().await?;
//! # Ok(())
//! # }
//! ```
//!
//! A request walks through the modules in this order:
//! [`discovery`] (at load) → [`routing`] → [`policy`] → [`runtime`], with
//! [`server`] assembling them, [`registry`] holding what is loaded, and
//! [`manifest`] describing what users write.

pub mod build;
pub mod cli;
mod dev;
pub mod discovery;
pub mod loader;
pub mod manifest;
pub mod openapi;
pub mod policy;
pub mod registry;
pub mod routing;
pub mod runtime;
mod scaffold;
pub mod server;
