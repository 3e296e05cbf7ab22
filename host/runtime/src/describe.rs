//! `wasmfn:function/metadata.describe`, called once at load under the
//! function's own limits.

use std::time::{Duration, Instant};

use wasmtime::{Store, UpdateDeadline};

use super::state::{Capabilities, InstanceState, InvokeTags, TagCell};
use super::{CompiledComponent, Runtime};

/// The export that describes a function.
pub const METADATA_INTERFACE: &str = "wasmfn:function/metadata@0.1.0";

/// Why a component's `describe` export gave no document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DescribeError {
    /// The component exports the metadata interface without its function.
    #[error("`{METADATA_INTERFACE}` has no `describe` function")]
    NoDescribe,
    /// The thread that runs `describe` could not start its event loop.
    #[error("cannot start a runtime for `describe`: {0}")]
    Runtime(std::io::Error),
    /// `describe` trapped, or does not have the type `func() -> string`.
    #[error("`describe` failed: {0:#}")]
    Failed(wasmtime::Error),
    /// `describe` ran past the function's `timeout_ms`.
    #[error("`describe` did not return within {timeout_ms} ms")]
    Timeout {
        /// The function's `timeout_ms`.
        timeout_ms: u64,
    },
}

impl Runtime {
    /// Calls `describe` if the component exports it. `Ok(None)` when it
    /// does not; an error when the call fails or traps.
    pub fn describe(
        &self,
        component: &CompiledComponent,
        function: &str,
        timeout: Duration,
        max_memory_bytes: u64,
    ) -> Result<Option<String>, DescribeError> {
        let pre = &component.pre;
        let c = pre.component();
        let Some(iface) = c.get_export_index(None, METADATA_INTERFACE) else {
            return Ok(None);
        };
        let func = c
            .get_export_index(Some(&iface), "describe")
            .ok_or(DescribeError::NoDescribe)?;
        let tags = TagCell::for_request(InvokeTags {
            tenant: "default".into(),
            function: function.into(),
            request_id: "describe".into(),
        });
        let state = InstanceState::new(tags, max_memory_bytes, Capabilities::default());
        let deadline = Instant::now() + timeout;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(DescribeError::Runtime)?;
        rt.block_on(async {
            let mut store = Store::new(pre.engine(), state);
            store.limiter(|s| &mut s.limiter);
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(move |_| {
                if Instant::now() >= deadline {
                    Ok(UpdateDeadline::Interrupt)
                } else {
                    Ok(UpdateDeadline::Yield(1))
                }
            });
            let run = async {
                let instance = pre.instantiate_async(&mut store).await?;
                let f = instance.get_typed_func::<(), (String,)>(&mut store, &func)?;
                let (text,) = f.call_async(&mut store, ()).await?;
                Ok::<String, wasmtime::Error>(text)
            };
            match tokio::time::timeout_at(deadline.into(), run).await {
                Ok(Ok(text)) => Ok(Some(text)),
                Ok(Err(e)) => Err(DescribeError::Failed(e)),
                Err(_) => Err(DescribeError::Timeout {
                    timeout_ms: timeout.as_millis() as u64,
                }),
            }
        })
    }
}
