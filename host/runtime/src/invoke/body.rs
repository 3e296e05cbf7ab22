//! The guest's response body, as the server sends it.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::task::AbortHandle;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

struct AbortOnDrop(Option<AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(h) = self.0.take() {
            h.abort();
        }
    }
}

/// The guest's response body. Dropped before its end, it stops the
/// instance that produces it.
pub struct GuestBody {
    inner: HyperOutgoingBody,
    abort: AbortOnDrop,
    done: bool,
}

impl GuestBody {
    /// `inner`, whose drop before its end aborts the task `running` (the
    /// instance that still writes it), if any.
    pub(crate) fn new(inner: HyperOutgoingBody, running: Option<AbortHandle>) -> Self {
        Self {
            inner,
            abort: AbortOnDrop(running),
            done: false,
        }
    }

    /// A body streamed by an instance that serves other requests too: it
    /// ends with its request, not the instance.
    pub(crate) fn from_lane(inner: HyperOutgoingBody) -> Self {
        Self::new(inner, None)
    }
}

impl Body for GuestBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = r {
            // Finished normally: let the instance finish its work, within
            // its deadline.
            self.done = true;
            self.abort.0 = None;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
