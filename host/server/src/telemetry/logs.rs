//! A function's recent log: the last [`RING_LINES`] lines of its guests'
//! stdout and stderr and of its access log, kept in memory per function
//! (across reloads and versions), read with `/_fn/functions/{name}/logs`;
//! followers get each new line as it comes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::broadcast;

use wasmfn_runtime::{GuestOutput, Stream};

/// Lines kept per function.
pub const RING_LINES: usize = 1000;
/// Lines a follower may fall behind before it misses some.
const FOLLOW_BACKLOG: usize = 256;
/// Longest line kept; a longer one is cut (guest lines are at most 16 KiB already).
const MAX_TEXT: usize = 16 * 1024;

/// What a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LineKind {
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
    /// The host's access-log line for one request.
    Access,
}

/// What one request's access line says; kept as fields, written out as
/// text only when the log is read (most lines are never read).
#[derive(Debug, Clone)]
pub struct AccessLine {
    /// The request's method.
    pub method: http::Method,
    /// Its path.
    pub path: Box<str>,
    /// The status sent.
    pub status: u16,
    /// Arrival to the end of the response body, in ms.
    pub duration_ms: f64,
    /// `Content-Length` of the request.
    pub bytes_in: u64,
    /// Bytes of the response body sent.
    pub bytes_out: u64,
    /// Guest CPU time, in ms.
    pub cpu_ms: f64,
    /// `warm`, `fresh`, `reused` or `-`.
    pub instance: &'static str,
    /// The limit that refused it, or `-`.
    pub limit: &'static str,
}

impl std::fmt::Display for AccessLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {} {:.1}ms in={} out={} cpu={:.2}ms instance={} limit={}",
            self.method,
            self.path,
            self.status,
            self.duration_ms,
            self.bytes_in,
            self.bytes_out,
            self.cpu_ms,
            self.instance,
            self.limit
        )
    }
}

/// A line as the ring keeps it.
#[derive(Debug, Clone)]
struct Entry {
    time: SystemTime,
    request_id: Arc<str>,
    text: Text,
}

#[derive(Debug, Clone)]
enum Text {
    Output(LineKind, Box<str>),
    Access(Box<AccessLine>),
}

impl Entry {
    fn line(&self) -> LogLine {
        let (kind, text) = match &self.text {
            Text::Output(kind, text) => (*kind, text.to_string()),
            Text::Access(a) => (LineKind::Access, a.to_string()),
        };
        LogLine {
            time: self.time,
            kind,
            request_id: self.request_id.to_string(),
            text,
        }
    }
}

/// One line of a function's log.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// When it was written, RFC 3339 in UTC.
    #[serde(serialize_with = "rfc3339")]
    pub time: SystemTime,
    /// Its kind.
    pub kind: LineKind,
    /// The request it belongs to (`-`: none, e.g. written while a warm instance was made).
    pub request_id: String,
    /// The line, without its newline.
    pub text: String,
}

fn rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

/// One function's recent lines and its followers.
#[derive(Debug)]
pub struct LogRing {
    lines: Mutex<VecDeque<Entry>>,
    follow: broadcast::Sender<Entry>,
}

/// A follower's receiver of new lines.
pub struct Follower(broadcast::Receiver<Entry>);

impl Follower {
    /// The next line; `Err(n)` when `n` lines went by unseen (the
    /// follower fell behind); `None` when the ring is gone.
    pub async fn next(&mut self) -> Option<Result<LogLine, u64>> {
        match self.0.recv().await {
            Ok(e) => Some(Ok(e.line())),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Err(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl Default for LogRing {
    fn default() -> Self {
        Self {
            lines: Mutex::new(VecDeque::new()),
            follow: broadcast::channel(FOLLOW_BACKLOG).0,
        }
    }
}

impl LogRing {
    /// Adds a line of guest output (or any text), dropping the oldest beyond [`RING_LINES`].
    pub fn push(&self, kind: LineKind, request_id: &str, text: &str) {
        let mut end = text.len().min(MAX_TEXT);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.add(Entry {
            time: SystemTime::now(),
            request_id: request_id.into(),
            text: Text::Output(kind, text[..end].into()),
        });
    }

    /// Adds a request's access line.
    pub fn push_access(&self, request_id: Arc<str>, line: AccessLine) {
        self.add(Entry {
            time: SystemTime::now(),
            request_id,
            text: Text::Access(Box::new(line)),
        });
    }

    fn add(&self, entry: Entry) {
        if self.follow.receiver_count() > 0 {
            // A follower that fell too far behind is told so by its receiver.
            let _ = self.follow.send(entry.clone());
        }
        let mut lines = self.lines.lock().expect("log ring");
        if lines.len() == RING_LINES {
            lines.pop_front();
        }
        lines.push_back(entry);
    }

    /// The last `n` lines, oldest first.
    pub fn tail(&self, n: usize) -> Vec<LogLine> {
        let lines = self.lines.lock().expect("log ring");
        lines
            .iter()
            .skip(lines.len().saturating_sub(n))
            .map(Entry::line)
            .collect()
    }

    /// The last `n` lines, and a follower of every line after them (taken
    /// under one lock: none is missed or seen twice).
    pub fn tail_and_follow(&self, n: usize) -> (Vec<LogLine>, Follower) {
        let lines = self.lines.lock().expect("log ring");
        let rx = self.follow.subscribe();
        let tail = lines
            .iter()
            .skip(lines.len().saturating_sub(n))
            .map(Entry::line)
            .collect();
        (tail, Follower(rx))
    }
}

impl GuestOutput for LogRing {
    fn line(&self, request_id: &str, stream: Stream, text: &str) {
        let kind = match stream {
            Stream::Stdout => LineKind::Stdout,
            Stream::Stderr => LineKind::Stderr,
        };
        self.push(kind, request_id, text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_last_lines_in_order() {
        let ring = LogRing::default();
        for i in 0..RING_LINES + 5 {
            ring.push(LineKind::Stdout, "r", &format!("line {i}"));
        }
        let tail = ring.tail(3);
        let texts: Vec<&str> = tail.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                format!("line {}", RING_LINES + 2),
                format!("line {}", RING_LINES + 3),
                format!("line {}", RING_LINES + 4)
            ]
        );
        assert_eq!(ring.tail(usize::MAX).len(), RING_LINES);
        assert_eq!(ring.tail(usize::MAX)[0].text, "line 5");
    }

    #[tokio::test]
    async fn a_follower_gets_what_comes_after_its_tail() {
        let ring = LogRing::default();
        ring.push_access(
            "r1".into(),
            AccessLine {
                method: http::Method::GET,
                path: "/a".into(),
                status: 200,
                duration_ms: 1.25,
                bytes_in: 0,
                bytes_out: 12,
                cpu_ms: 0.5,
                instance: "warm",
                limit: "-",
            },
        );
        let (tail, mut rx) = ring.tail_and_follow(10);
        assert_eq!(tail.len(), 1);
        assert_eq!(tail[0].kind, LineKind::Access);
        assert_eq!(
            tail[0].text,
            "GET /a 200 1.2ms in=0 out=12 cpu=0.50ms instance=warm limit=-"
        );
        GuestOutput::line(&ring, "r2", Stream::Stderr, "boom");
        let next = rx.next().await.unwrap().unwrap();
        assert_eq!(
            (next.kind, next.request_id.as_str(), next.text.as_str()),
            (LineKind::Stderr, "r2", "boom")
        );
        let json = serde_json::to_value(&next).unwrap();
        assert_eq!(json["kind"], "stderr");
        assert!(json["time"].as_str().unwrap().ends_with('Z'), "{json}");
    }

    #[test]
    fn a_long_line_is_cut_on_a_character_boundary() {
        let ring = LogRing::default();
        let text = "é".repeat(MAX_TEXT);
        ring.push(LineKind::Stdout, "r", &text);
        let kept = &ring.tail(1)[0].text;
        assert!(kept.len() <= MAX_TEXT && kept.chars().all(|c| c == 'é'));
    }
}
