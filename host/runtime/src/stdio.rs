//! Guest stdout and stderr, line by line into the host's log (and the
//! function's [`GuestOutput`]), tagged with the function and the request
//! id. One line buffer per instance and stream, shared by every handle the
//! guest opens on it: a line written through several `get-stderr()`
//! handles is still one line. What is left without a newline is written
//! when the instance's request ends (an instance kept for reuse) or when
//! the instance is dropped.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use super::observe::Stream;
use super::state::TagCell;

/// Longest line kept whole; longer output is logged in pieces.
const MAX_LINE: usize = 16 * 1024;

/// A `StdoutStream` that logs each line the guest writes; its clones share one buffer.
#[derive(Clone)]
pub(crate) struct GuestLog(Arc<Lines>);

struct Lines {
    tags: Arc<TagCell>,
    stream: Stream,
    buf: Mutex<Vec<u8>>,
}

impl GuestLog {
    pub(crate) fn new(tags: Arc<TagCell>, stream: Stream) -> Self {
        Self(Arc::new(Lines {
            tags,
            stream,
            buf: Mutex::new(Vec::new()),
        }))
    }

    /// Writes what is left without a newline as a line of its own.
    pub(crate) fn flush_partial(&self) {
        let rest = std::mem::take(&mut *self.0.buf.lock().expect("guest output"));
        if !rest.is_empty() {
            self.0.emit(&rest);
        }
    }
}

impl Lines {
    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let request_id = self.tags.request_id();
        tracing::info!(
            target: "wasmfn::guest",
            function = %self.tags.function(),
            request_id = %request_id,
            stream = self.stream.as_str(),
            "{text}"
        );
        if let Some(out) = self.tags.output() {
            out.line(&request_id, self.stream, text);
        }
    }

    fn write(&self, data: &[u8]) {
        let mut lines = Vec::new();
        {
            let mut buf = self.buf.lock().expect("guest output");
            buf.extend_from_slice(data);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = buf.drain(..=pos).collect();
                line.pop();
                lines.push(line);
            }
            while buf.len() >= MAX_LINE {
                lines.push(buf.drain(..MAX_LINE).collect());
            }
        }
        for line in lines {
            self.emit(&line);
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let rest = std::mem::take(self.buf.get_mut().unwrap_or_else(|e| e.into_inner()));
        if !rest.is_empty() {
            self.emit(&rest);
        }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for GuestLog {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        self.0.write(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::GuestOutput;

    #[derive(Default)]
    struct Seen(Mutex<Vec<(String, &'static str, String)>>);

    impl GuestOutput for Seen {
        fn line(&self, request_id: &str, stream: Stream, text: &str) {
            self.0
                .lock()
                .unwrap()
                .push((request_id.into(), stream.as_str(), text.into()));
        }
    }

    #[tokio::test]
    async fn a_line_written_through_several_handles_stays_one_line() {
        use tokio::io::AsyncWriteExt;
        let seen = Arc::new(Seen::default());
        let tags = TagCell::new("f".into(), Some(seen.clone()));
        tags.set_request(Some("r1".into()), None);
        let log = GuestLog::new(tags.clone(), Stream::Stderr);
        // As a guest that calls `get-stderr()` for each write.
        Pin::from(log.async_stream())
            .write_all(b"start a print ")
            .await
            .unwrap();
        for i in 1..=3 {
            Pin::from(log.async_stream())
                .write_all(format!("{i}").as_bytes())
                .await
                .unwrap();
        }
        Pin::from(log.async_stream())
            .write_all(b"\nsecond\r\nthird, unfinished")
            .await
            .unwrap();
        let lines = |s: &Seen| s.0.lock().unwrap().iter().map(|l| l.2.clone()).collect::<Vec<_>>();
        assert_eq!(lines(&seen), ["start a print 123", "second"]);
        // The request ends: the unfinished line is its request's.
        log.flush_partial();
        tags.set_request(Some("r2".into()), None);
        Pin::from(log.async_stream())
            .write_all(b"tail without newline")
            .await
            .unwrap();
        drop(log);
        let all = seen.0.lock().unwrap().clone();
        assert_eq!(all[2], ("r1".to_string(), "stderr", "third, unfinished".to_string()));
        assert_eq!(all[3], ("r2".to_string(), "stderr", "tail without newline".to_string()));
        assert_eq!(all.len(), 4);
    }

    #[tokio::test]
    async fn a_long_line_is_written_in_pieces() {
        use tokio::io::AsyncWriteExt;
        let seen = Arc::new(Seen::default());
        let log = GuestLog::new(TagCell::new("f".into(), Some(seen.clone())), Stream::Stdout);
        Pin::from(log.async_stream())
            .write_all(&vec![b'x'; MAX_LINE + 10])
            .await
            .unwrap();
        assert_eq!(seen.0.lock().unwrap().len(), 1, "one full piece so far");
        assert_eq!(seen.0.lock().unwrap()[0].0, "-", "no request: `-`");
        drop(log);
        let all = seen.0.lock().unwrap().clone();
        assert_eq!((all[0].2.len(), all[1].2.len()), (MAX_LINE, 10));
    }
}
