//! How an invocation ended: its error by the type of what failed, what its
//! observer is told.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::Trap;

use super::InvokeError;
use crate::observe::{Exit, InstanceKind, Invocation, Observer};

/// How an invocation that failed ended, for its [`Observer`].
pub(crate) fn exit_of(e: &InvokeError) -> Exit {
    match e {
        InvokeError::Timeout => Exit::Timeout,
        InvokeError::OutOfMemory(_) => Exit::OutOfMemory,
        InvokeError::Interrupted => Exit::Interrupted,
        InvokeError::GuestError(_) | InvokeError::NoResponse => Exit::Error,
        InvokeError::StackOverflow(_)
        | InvokeError::Trap(_)
        | InvokeError::InvalidResponse(_)
        | InvokeError::Capacity(_)
        | InvokeError::RequestBody(_) => Exit::Trap,
    }
}

/// An invocation's observer, with how it got its instance.
#[derive(Clone)]
pub(crate) struct Report {
    pub(crate) observer: Option<Arc<dyn Observer>>,
    pub(crate) kind: InstanceKind,
}

impl Report {
    pub(crate) fn instance_ready(&self, instantiation: Duration) {
        if let Some(o) = &self.observer {
            o.instance_ready(self.kind, instantiation);
        }
    }

    pub(crate) fn finished(&self, exit: Exit, cpu: Duration, memory_peak_bytes: Option<u64>) {
        if let Some(o) = &self.observer {
            o.finished(&Invocation {
                kind: self.kind,
                cpu,
                memory_peak_bytes,
                exit,
            });
        }
    }
}

pub(super) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into());
    format!("the host panicked running the function: {detail}")
}

/// What a failed instantiation or call was, by the type of its error: an
/// interrupt is the deadline, a pool at its limit is capacity (not the
/// guest's fault), a refused memory growth is out of memory.
pub(crate) fn classify(e: &wasmtime::Error, memory_denied: bool, interrupted: bool) -> InvokeError {
    let message = format!("{e:#}");
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) if interrupted => InvokeError::Interrupted,
        Some(Trap::Interrupt) => InvokeError::Timeout,
        Some(Trap::StackOverflow) => InvokeError::StackOverflow(message),
        _ if memory_denied => InvokeError::OutOfMemory(message),
        _ if e.downcast_ref::<wasmtime::PoolConcurrencyLimitError>().is_some() => InvokeError::Capacity(message),
        _ => InvokeError::Trap(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_pool_is_capacity_by_its_type_not_its_text() {
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(1);
        let mut config = wasmtime::Config::new();
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        let engine = wasmtime::Engine::new(&config).unwrap();
        let bytes = wat::parse_str("(component)").unwrap();
        let component = wasmtime::component::Component::from_binary(&engine, &bytes).unwrap();
        let linker = wasmtime::component::Linker::<()>::new(&engine);
        let mut first = wasmtime::Store::new(&engine, ());
        linker.instantiate(&mut first, &component).unwrap();
        let mut second = wasmtime::Store::new(&engine, ());
        let full = linker.instantiate(&mut second, &component).unwrap_err();
        assert!(
            matches!(classify(&full, false, false), InvokeError::Capacity(_)),
            "{full:#}"
        );

        // A guest's own message that reads like one is still the guest's.
        let lookalike = wasmtime::Error::msg("maximum concurrent limit reached");
        assert!(matches!(classify(&lookalike, false, false), InvokeError::Trap(_)));
        assert!(matches!(classify(&lookalike, true, false), InvokeError::OutOfMemory(_)));
        let interrupt = wasmtime::Error::from(Trap::Interrupt);
        assert!(matches!(classify(&interrupt, false, false), InvokeError::Timeout));
        assert!(matches!(classify(&interrupt, false, true), InvokeError::Interrupted));
    }
}
