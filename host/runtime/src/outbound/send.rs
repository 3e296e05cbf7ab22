//! Plain-HTTP requests sent over a connection to addresses the caller has
//! already resolved and checked, so that the name is never looked up a
//! second time between the check and the connection.

use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

/// What finishes the connection once the response head is in.
pub(super) type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

/// A timeout the guest left unset (`wasi:http`'s own default).
const UNSET_TIMEOUT: Duration = Duration::from_secs(600);

/// Sends `request` over HTTP/1.1 to the first of `addrs` that accepts a
/// connection, in order, under the guest's connect, first-byte and
/// between-bytes timeouts. The request keeps its `Host` header.
pub(super) async fn send_http(
    mut request: http::Request<WasiBody>,
    addrs: &[SocketAddr],
    options: Option<RequestOptions>,
) -> Result<(http::Response<WasiBody>, IoFuture), Error> {
    let or_unset = |t: Option<Duration>| t.unwrap_or(UNSET_TIMEOUT);
    let connect_timeout = or_unset(options.and_then(|o| o.connect_timeout));
    let first_byte_timeout = or_unset(options.and_then(|o| o.first_byte_timeout));
    // A zero interval would never let a frame through; 1 ns is as strict.
    let between_bytes_timeout = or_unset(options.and_then(|o| o.between_bytes_timeout)).max(Duration::from_nanos(1));

    let stream = connect(addrs, connect_timeout).await?;
    let (mut sender, conn) = tokio::time::timeout(
        connect_timeout,
        hyper::client::conn::http1::handshake(TokioIo::new(stream)),
    )
    .await
    .map_err(|_| Error::ConnectionTimeout)??;
    // On the wire the request line carries the path; the host is in `Host`.
    *request.uri_mut() = origin_form(request.uri());

    // The connection does the I/O: it is driven while the response head is
    // awaited, and handed back to be driven for the rest of the exchange.
    let mut conn = Some(Box::pin(conn));
    let mut send = Box::pin(tokio::time::timeout(first_byte_timeout, sender.send_request(request)));
    let response = std::future::poll_fn(|cx| {
        if let Poll::Ready(done) = send.as_mut().poll(cx) {
            return Poll::Ready(match done {
                Err(_) => Err(Error::ConnectionReadTimeout),
                Ok(result) => result.map_err(Error::from),
            });
        }
        if let Some(c) = conn.as_mut()
            && let Poll::Ready(ended) = c.as_mut().poll(cx)
        {
            conn = None;
            if let Err(e) = ended {
                return Poll::Ready(Err(Error::from(e)));
            }
            // The connection ended cleanly: the response may be complete.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    })
    .await?;
    let response = response.map(|incoming| {
        BetweenBytes {
            incoming,
            timeout: between_bytes_timeout,
            sleep: Box::pin(tokio::time::sleep(between_bytes_timeout)),
        }
        .boxed_unsync()
    });
    let io: IoFuture = Box::new(async move {
        match conn {
            Some(c) => c.await.map_err(|e| {
                if e.is_timeout() {
                    Error::HttpResponseTimeout
                } else {
                    e.into()
                }
            }),
            None => Ok(()),
        }
    });
    Ok((response, io))
}

/// A connection to the first of `addrs` that takes one; the last failure
/// when none does.
async fn connect(addrs: &[SocketAddr], timeout: Duration) -> Result<TcpStream, Error> {
    let mut failure = Error::ConnectionRefused;
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => failure = Error::Connect(e),
            Err(_) => failure = Error::ConnectionTimeout,
        }
    }
    Err(failure)
}

/// `uri`'s path and query alone (`/` when it has none).
fn origin_form(uri: &http::Uri) -> http::Uri {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    http::Uri::builder()
        .path_and_query(path)
        .build()
        .unwrap_or_else(|_| http::Uri::from_static("/"))
}

/// A response body that fails when no frame arrives within `timeout` of the
/// last one.
struct BetweenBytes {
    incoming: hyper::body::Incoming,
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Body for BetweenBytes {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match Pin::new(&mut self.incoming).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let next = tokio::time::Instant::now() + self.timeout;
                self.sleep.as_mut().reset(next);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(if e.is_timeout() {
                Error::HttpResponseTimeout
            } else {
                Error::from(e)
            }))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Error::ConnectionReadTimeout))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.incoming.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.incoming.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_line_carries_path_and_query_only() {
        for (uri, want) in [
            ("http://api.example.com/a/b?x=1&y=2", "/a/b?x=1&y=2"),
            ("http://api.example.com:8080", "/"),
            ("http://[2001:db8::1]:80/", "/"),
        ] {
            assert_eq!(origin_form(&uri.parse().unwrap()).to_string(), want, "{uri}");
        }
    }

    #[tokio::test]
    async fn the_first_address_that_answers_is_used() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        // A port nothing listens on: bind one, then free it.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let stream = connect(&[closed, open], Duration::from_secs(5)).await.unwrap();
        assert_eq!(stream.peer_addr().unwrap(), open);
        let err = connect(&[closed], Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(err, Error::Connect(_)), "{err:?}");
        assert!(matches!(
            connect(&[], Duration::from_secs(5)).await,
            Err(Error::ConnectionRefused)
        ));
    }
}
