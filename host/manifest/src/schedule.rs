//! `schedules`: invocations the host makes on a timetable, each a cron
//! pattern in a time zone, with the request to send and how often to try.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use http::Method;
use serde::Deserialize;
use serde_json::Value;

/// The most attempts after the first a schedule may ask for.
pub const MAX_RETRIES: u32 = 10;
/// The longest wait between attempts, in ms.
pub const MAX_BACKOFF_MS: u64 = 3_600_000;

/// One entry of `schedules`, checked: its pattern parsed, its time zone known.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Names it in `GET /_fn/schedules` and in `x-fn-schedule` (`id`, or its index).
    pub id: String,
    /// The pattern as written: five fields (minutes) or six (seconds first).
    pub cron: String,
    parsed: Cron,
    /// Where the pattern's hours and days are read (`UTC` by default).
    pub timezone: chrono_tz::Tz,
    /// The request's method (`GET` by default).
    pub method: Method,
    /// The request's path; `None`: the function's first route.
    pub path: Option<String>,
    /// The request's JSON body, if any.
    pub body: Option<Value>,
    /// Attempts after the first when one fails (a 5xx, a timeout, a trap).
    pub retries: u32,
    /// The wait before each further attempt, in ms.
    pub backoff_ms: u64,
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.cron == other.cron
            && self.timezone == other.timezone
            && self.method == other.method
            && self.path == other.path
            && self.body == other.body
            && self.retries == other.retries
            && self.backoff_ms == other.backoff_ms
    }
}

impl Schedule {
    /// The first time the pattern names strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.parsed
            .find_next_occurrence(&t.with_timezone(&self.timezone), false)
            .ok()
            .map(|n| n.with_timezone(&Utc))
    }
}

/// `schedules[i]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(default)]
    id: Option<String>,
    cron: String,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    body: Option<Value>,
    #[serde(default)]
    retries: Option<Retries>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Retries {
    #[serde(default)]
    max: u32,
    #[serde(default = "default_backoff")]
    backoff_ms: u64,
}

fn default_backoff() -> u64 {
    1000
}

/// Whether `id` may name a schedule: 1–64 of `a-z 0-9 _ -`.
pub fn is_schedule_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Parses `schedules`: each entry checked, ids distinct.
pub(crate) fn parse_schedules(entries: Vec<Value>) -> Result<Vec<Schedule>, String> {
    let mut out: Vec<Schedule> = Vec::with_capacity(entries.len());
    for (i, v) in entries.into_iter().enumerate() {
        let s = parse_one(i, v).map_err(|e| format!("entry {i}, {e}"))?;
        if out.iter().any(|o| o.id == s.id) {
            return Err(format!(
                "entry {i}, `id`: `{}` is taken by another schedule; give each its own `id`",
                s.id
            ));
        }
        out.push(s);
    }
    Ok(out)
}

fn parse_one(i: usize, v: Value) -> Result<Schedule, String> {
    let e: Entry = serde_json::from_value(v).map_err(|e| {
        format!(
            "{e}; write {{\"cron\": \"*/5 * * * *\", \"timezone\": \"Europe/Paris\", \"method\": \"POST\", \
             \"path\": \"/report\", \"body\": {{…}}, \"retries\": {{\"max\": 3, \"backoff_ms\": 1000}}}}"
        )
    })?;
    let id = e.id.unwrap_or_else(|| i.to_string());
    if !is_schedule_id(&id) {
        return Err(format!(
            "`id`: `{id}` is not a schedule id: give 1 to 64 of `a-z`, `0-9`, `_`, `-`"
        ));
    }
    let parsed = CronParser::builder()
        .seconds(Seconds::Optional)
        .build()
        .parse(&e.cron)
        .map_err(|err| {
            format!(
                "`cron`: `{}` is not a cron pattern ({err}); write five fields (minute hour day month weekday, \
                 e.g. `*/5 * * * *`) or six with seconds first (`*/10 * * * * *`)",
                e.cron
            )
        })?;
    let timezone = match e.timezone.as_deref() {
        None => chrono_tz::UTC,
        Some(tz) => chrono_tz::Tz::from_str(tz)
            .map_err(|_| format!("`timezone`: `{tz}` is not an IANA time zone; write e.g. `UTC` or `Europe/Paris`"))?,
    };
    let method = match e.method.as_deref() {
        None => Method::GET,
        Some(m) => match Method::from_bytes(m.as_bytes()) {
            Ok(method) if m.bytes().all(|b| b.is_ascii_uppercase()) => method,
            _ => return Err(format!("`method`: `{m}` is not an HTTP method; write e.g. `POST`")),
        },
    };
    if let Some(p) = &e.path
        && !p.starts_with('/')
    {
        return Err(format!("`path`: `{p}` must start with `/`"));
    }
    let (retries, backoff_ms) = e.retries.map_or((0, 1000), |r| (r.max, r.backoff_ms));
    if retries > MAX_RETRIES {
        return Err(format!("`retries.max`: {retries} is above {MAX_RETRIES}"));
    }
    if backoff_ms > MAX_BACKOFF_MS {
        return Err(format!(
            "`retries.backoff_ms`: {backoff_ms} is above {MAX_BACKOFF_MS} (an hour)"
        ));
    }
    let s = Schedule {
        id,
        cron: e.cron,
        parsed,
        timezone,
        method,
        path: e.path,
        body: e.body,
        retries,
        backoff_ms,
    };
    if s.next_after(Utc::now()).is_none() {
        return Err(format!("`cron`: `{}` names no time in the future", s.cron));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn one(v: Value) -> Result<Schedule, String> {
        parse_schedules(vec![v]).map(|mut s| s.remove(0))
    }

    #[test]
    fn a_schedule_has_defaults_and_its_next_times_follow_its_zone() {
        let s = one(json!({"cron": "0 9 * * *", "timezone": "Europe/Paris"})).unwrap();
        assert_eq!(
            (s.id.as_str(), &s.method, s.retries, s.backoff_ms),
            ("0", &Method::GET, 0, 1000)
        );
        // 09:00 in Paris is 08:00 UTC in winter, 07:00 UTC in summer.
        let winter = Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap();
        assert_eq!(
            s.next_after(winter),
            Some(Utc.with_ymd_and_hms(2026, 12, 8, 8, 0, 0).unwrap())
        );
        let summer = Utc.with_ymd_and_hms(2026, 7, 1, 12, 0, 0).unwrap();
        assert_eq!(
            s.next_after(summer),
            Some(Utc.with_ymd_and_hms(2026, 7, 2, 7, 0, 0).unwrap())
        );
        // Seconds first, six fields.
        let every =
            one(json!({"cron": "*/10 * * * * *", "id": "tick", "method": "POST", "retries": {"max": 3}})).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 5).unwrap();
        assert_eq!(
            every.next_after(t),
            Some(Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 10).unwrap())
        );
        assert_eq!((every.retries, every.backoff_ms, every.method), (3, 1000, Method::POST));
    }

    #[test]
    fn daylight_saving_changes_skip_or_merge_local_times() {
        let s = one(json!({"cron": "30 2 * * *", "timezone": "Europe/Paris"})).unwrap();
        // 2026-03-29: 02:00 to 03:00 does not exist in Paris.
        let before = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
        // The run happens when the gap ends: 03:00 CEST.
        assert_eq!(
            s.next_after(before),
            Some(Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap())
        );
        // 2026-10-25: 02:00 to 03:00 happens twice.
        let before = Utc.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap();
        // Once, at the first 02:30 (CEST), not again an hour later.
        let first = s.next_after(before).unwrap();
        assert_eq!(first, Utc.with_ymd_and_hms(2026, 10, 25, 0, 30, 0).unwrap());
        assert_eq!(
            s.next_after(first),
            Some(Utc.with_ymd_and_hms(2026, 10, 26, 1, 30, 0).unwrap())
        );
    }

    #[test]
    fn broken_schedules_name_the_entry_the_field_and_the_fix() {
        let cases = [
            (
                json!({"cron": "every minute"}),
                "entry 0, `cron`: `every minute` is not a cron pattern",
            ),
            (
                json!({"cron": "* * * * *", "timezone": "Mars/Olympus"}),
                "`timezone`: `Mars/Olympus` is not an IANA time zone",
            ),
            (
                json!({"cron": "* * * * *", "method": "get"}),
                "`method`: `get` is not an HTTP method",
            ),
            (
                json!({"cron": "* * * * *", "path": "report"}),
                "`path`: `report` must start with `/`",
            ),
            (
                json!({"cron": "* * * * *", "id": "Daily Report"}),
                "`id`: `Daily Report` is not a schedule id",
            ),
            (
                json!({"cron": "* * * * *", "retries": {"max": 11}}),
                "`retries.max`: 11 is above 10",
            ),
            (
                json!({"cron": "* * * * *", "retries": {"backoff_ms": 3600001}}),
                "`retries.backoff_ms`",
            ),
            (json!({"cron": "* * * * *", "every": 5}), "unknown field `every`"),
            (json!({"timezone": "UTC"}), "missing field `cron`"),
        ];
        for (v, want) in cases {
            let e = one(v.clone()).unwrap_err();
            assert!(e.contains(want), "{v}: {e}");
        }
        let e = parse_schedules(vec![
            json!({"cron": "* * * * *", "id": "a"}),
            json!({"cron": "0 * * * *", "id": "a"}),
        ])
        .unwrap_err();
        assert!(e.contains("entry 1, `id`: `a` is taken"), "{e}");
    }
}
