//! Body size limits: the request body is cut at `max_body_bytes` (the guest
//! sees an error), the response body at `max_response_bytes` (the stream
//! is cut and the event logged).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use wasmfn_runtime::{InvokeTags, RequestBodyError};

pin_project! {
    /// A request body that fails once more than `limit` bytes arrive.
    pub struct LimitedBody<B> {
        #[pin]
        inner: B,
        seen: u64,
        limit: u64,
        exceeded: Arc<AtomicBool>,
    }
}

impl<B> LimitedBody<B> {
    /// Wraps `inner`; `exceeded` is set when the limit is crossed.
    pub fn new(inner: B, limit: u64, exceeded: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            seen: 0,
            limit,
            exceeded,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = RequestBodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if this.exceeded.load(Ordering::Relaxed) {
            return Poll::Ready(Some(Err(RequestBodyError::TooLarge(*this.limit))));
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.seen += data.len() as u64;
                    if *this.seen > *this.limit {
                        this.exceeded.store(true, Ordering::Relaxed);
                        return Poll::Ready(Some(Err(RequestBodyError::TooLarge(*this.limit))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(RequestBodyError::Transport(e.to_string())))),
            other => other.map(|_| None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The response body grew past `max_response_bytes`.
#[derive(Debug, thiserror::Error)]
#[error("response body exceeds `max_response_bytes` ({0} bytes); stream cut")]
pub struct ResponseTooLarge(pub u64);

pin_project! {
    /// A response body that ends with an error (cutting the stream) once
    /// more than `limit` bytes pass.
    pub struct LimitedResponse<B> {
        #[pin]
        inner: B,
        seen: u64,
        limit: u64,
        tags: InvokeTags,
        on_exceeded: Option<Box<dyn FnOnce() + Send>>,
    }
}

impl<B> LimitedResponse<B> {
    /// Wraps `inner`; `on_exceeded` runs once, when the limit is crossed, and `tags` name the log line.
    pub fn new(inner: B, limit: u64, tags: InvokeTags, on_exceeded: Box<dyn FnOnce() + Send>) -> Self {
        Self {
            inner,
            seen: 0,
            limit,
            tags,
            on_exceeded: Some(on_exceeded),
        }
    }
}

impl<B> Body for LimitedResponse<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if *this.seen > *this.limit {
            return Poll::Ready(None);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.seen += data.len() as u64;
                    if *this.seen > *this.limit {
                        tracing::warn!(
                            function = %this.tags.function,
                            request_id = %this.tags.request_id,
                            limit = *this.limit,
                            "response body exceeds max_response_bytes; stream cut"
                        );
                        if let Some(f) = this.on_exceeded.take() {
                            f();
                        }
                        return Poll::Ready(Some(Err(Box::new(ResponseTooLarge(*this.limit)))));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            other => other.map(|_| None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut h = self.inner.size_hint();
        if h.upper().is_some_and(|u| u > self.limit) {
            h = SizeHint::new();
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    #[tokio::test]
    async fn request_limit() {
        let flag = Arc::new(AtomicBool::new(false));
        let ok = LimitedBody::new(Full::new(Bytes::from(vec![1u8; 10])), 10, flag.clone());
        assert_eq!(ok.collect().await.unwrap().to_bytes().len(), 10);
        assert!(!flag.load(Ordering::Relaxed));
        let chunks = (0..3).map(|_| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(vec![0u8; 5]))));
        let over = LimitedBody::new(StreamBody::new(futures::stream::iter(chunks)), 10, flag.clone());
        let err = over.collect().await.unwrap_err();
        assert!(matches!(err, RequestBodyError::TooLarge(10)));
        assert!(flag.load(Ordering::Relaxed));
    }

    #[tokio::test]
    async fn response_limit() {
        let tags = InvokeTags {
            tenant: "default".into(),
            function: "f".into(),
            request_id: "r".into(),
        };
        let hit = Arc::new(AtomicBool::new(false));
        let h = hit.clone();
        let body = LimitedResponse::new(
            Full::new(Bytes::from(vec![0u8; 11])),
            10,
            tags,
            Box::new(move || h.store(true, Ordering::Relaxed)),
        );
        assert!(body.collect().await.is_err());
        assert!(hit.load(Ordering::Relaxed));
    }
}
