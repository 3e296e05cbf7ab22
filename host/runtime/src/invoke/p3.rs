//! A request through `wasi:http/handler@0.3` (WASIp3, experimental in
//! wasmtime 48). The guest's async `handle` runs in the store's event loop,
//! which keeps running while the response body streams out of the guest
//! (its tasks write it after `handle` returned) and ends with the body.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use wasmtime::Store;
use wasmtime::component::Accessor;
use wasmtime_wasi_http::p3::Request;
use wasmtime_wasi_http::p3::bindings::Service;
use wasmtime_wasi_http::{FieldMap, WasiHttpView};

use super::{Failed, HeadSender, RequestBodyError};
use crate::state::InstanceState;

/// Calls `service`'s `handle` with `request` and sends its response head
/// to `head`; returns once the response body has ended or was dropped (a
/// client that went away), or the guest failed.
pub(super) async fn handle<B>(
    store: &mut Store<InstanceState>,
    service: &Service,
    request: http::Request<B>,
    head: HeadSender,
) -> Result<(), Failed>
where
    B: Body<Data = Bytes, Error = RequestBodyError> + Send + 'static,
{
    store
        .run_concurrent(async move |accessor| serve(accessor, service, request, head).await)
        .await??;
    Ok(())
}

/// [`handle`] inside the store's event loop, one of the requests an
/// instance may serve at once.
pub(crate) async fn serve<B>(
    accessor: &Accessor<InstanceState>,
    service: &Service,
    request: http::Request<B>,
    head: HeadSender,
) -> wasmtime::Result<()>
where
    B: Body<Data = Bytes, Error = RequestBodyError> + Send + 'static,
{
    // As `Request::from_http` makes it, the headers checked by the hooks.
    let (parts, body) = request.into_parts();
    let headers = accessor.with(|mut store| FieldMap::new_immutable(store.data_mut().http().hooks, parts.headers));
    let uri = parts.uri.into_parts();
    let (request, request_io) = Request::new(
        parts.method,
        // As the 0.2 handler gets it: the host serves plain HTTP.
        uri.scheme.or(Some(http::uri::Scheme::HTTP)),
        uri.authority,
        uri.path_and_query,
        headers,
        None,
        body,
    );
    let response = match service.handle(accessor, request).await? {
        Ok(response) => response,
        Err(code) => {
            // The receiver is only gone if the request was.
            let _ = head.send(Err(format!("{code:?}")));
            return Ok(());
        }
    };
    let response = accessor.with(|store| response.into_http(store, request_io))?;
    let (ended_tx, ended) = tokio::sync::oneshot::channel();
    let response = response.map(|inner| {
        Watched {
            inner,
            ended: Some(ended_tx),
        }
        .boxed_unsync()
    });
    if head.send(Ok(response)).is_ok() {
        // The guest's tasks produce the body meanwhile.
        let _ = ended.await;
    }
    Ok(())
}

pin_project_lite::pin_project! {
    /// A response body that says when it ended or was dropped.
    struct Watched<B> {
        #[pin]
        inner: B,
        ended: Option<tokio::sync::oneshot::Sender<()>>,
    }
}

impl<B: Body> Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.ended.take();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
