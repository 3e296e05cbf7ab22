//! One desired state shared by several hosts, in Redis: a document with a
//! version (changed only by compare-and-set, so that two hosts changing it
//! at once cannot lose a change), the blobs it names by content digest, and
//! a channel that tells every host when the version moves.

use std::sync::Arc;

use futures::StreamExt;

use super::KvError;
use crate::redis::RedisKv;

const VERSION: &str = "wasmfn:state:version";
const DOCUMENT: &str = "wasmfn:state:document";
const CHANNEL: &str = "wasmfn:state:changed";

fn blob_key(hex: &str) -> String {
    format!("wasmfn:state:blob:{hex}")
}

/// Sets the document `ARGV[2]` if the version is `ARGV[1]`, moves the
/// version on and tells the channel; answers the new version, or `-1 -
/// version now` when it was not `ARGV[1]`.
const STORE: &str = r"
local now = tonumber(redis.call('GET', KEYS[1]) or '0')
if now ~= tonumber(ARGV[1]) then return -1 - now end
redis.call('SET', KEYS[2], ARGV[2])
local next = redis.call('INCR', KEYS[1])
redis.call('PUBLISH', ARGV[3], tostring(next))
return next
";

/// The shared desired state on a Redis server.
#[derive(Clone, Debug)]
pub struct SharedState {
    redis: Arc<RedisKv>,
    store: Arc<redis::Script>,
}

/// Changes of the shared version, as they are announced.
pub struct Changes(redis::aio::PubSubStream);

impl Changes {
    /// The next version announced; `None` when the subscription ended
    /// (the connection broke: subscribe again).
    pub async fn next(&mut self) -> Option<u64> {
        loop {
            let msg = self.0.next().await?;
            if let Ok(v) = msg.get_payload::<String>()
                && let Ok(v) = v.parse()
            {
                return Some(v);
            }
        }
    }
}

impl SharedState {
    /// The state on the server at `url`; nothing is connected yet.
    pub fn new(url: &str) -> Result<Self, KvError> {
        Ok(Self {
            redis: Arc::new(RedisKv::new(url)?),
            store: Arc::new(redis::Script::new(STORE)),
        })
    }

    /// Leases on the same server.
    pub fn leases(&self) -> crate::SharedLeases {
        crate::SharedLeases(self.redis.clone())
    }

    /// Where it is, without credentials.
    pub fn server(&self) -> &str {
        self.redis.shown()
    }

    /// The version now (0: nothing was ever stored).
    pub async fn version(&self) -> Result<u64, KvError> {
        let v: Option<u64> = self.redis.query(redis::cmd("GET").arg(VERSION)).await?;
        Ok(v.unwrap_or(0))
    }

    /// The version and the document, if one was ever stored.
    pub async fn load(&self) -> Result<Option<(u64, Vec<u8>)>, KvError> {
        let (v, doc): (Option<u64>, Option<Vec<u8>>) =
            self.redis.query(redis::cmd("MGET").arg(VERSION).arg(DOCUMENT)).await?;
        Ok(match (v, doc) {
            (Some(v), Some(doc)) => Some((v, doc)),
            _ => None,
        })
    }

    /// Stores `doc` if the version is still `expected`: `Ok(new version)`,
    /// or `Err(the version now)` when another host stored first.
    pub async fn store(&self, expected: u64, doc: &[u8]) -> Result<Result<u64, u64>, KvError> {
        let mut inv = self.store.key(VERSION);
        inv.key(DOCUMENT).arg(expected).arg(doc).arg(CHANNEL);
        let answer: i64 = self.redis.script(&inv).await?;
        Ok(if answer >= 0 {
            Ok(answer as u64)
        } else {
            Err((-1 - answer) as u64)
        })
    }

    /// Stores a blob under its digest (kept if it is there already).
    pub async fn put_blob(&self, hex: &str, bytes: &[u8]) -> Result<(), KvError> {
        let _: Option<String> = self
            .redis
            .query(redis::cmd("SET").arg(blob_key(hex)).arg(bytes).arg("NX"))
            .await?;
        Ok(())
    }

    /// The blob of digest `hex`, if it is stored.
    pub async fn get_blob(&self, hex: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.redis.query(redis::cmd("GET").arg(blob_key(hex))).await
    }

    /// Subscribes to the announcements of new versions.
    pub async fn changes(&self) -> Result<Changes, KvError> {
        let mut pubsub = self.redis.pubsub().await?;
        pubsub
            .subscribe(CHANNEL)
            .await
            .map_err(|e| KvError::Unavailable(format!("Redis at {}: {e}", self.redis.shown())))?;
        Ok(Changes(pubsub.into_on_message()))
    }
}
