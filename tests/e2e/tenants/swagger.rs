//! Swagger UI's "Authorize" against the running host, in headless
//! Chromium driven over the DevTools protocol: the same operation executed
//! from the docs page answers 401 without a key and 200 once authorized.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;
use tokio_tungstenite::tungstenite::Message;

use super::*;

/// Runs in the docs page: optionally authorizes with `key`, executes the
/// one operation and gives the status Swagger UI shows.
const EXECUTE: &str = r#"
(async (key) => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const until = async (what, f) => {
    for (let i = 0; i < 400; i++) { const v = f(); if (v) return v; await sleep(50); }
    throw new Error('not found: ' + what);
  };
  const type = (input, text) => {
    const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
    set.call(input, text);
    input.dispatchEvent(new Event('input', { bubbles: true }));
  };
  if (key) {
    (await until('authorize button', () => document.querySelector('.auth-wrapper .btn.authorize'))).click();
    type(await until('key input', () => document.querySelector('.modal-ux .auth-container input')), key);
    (await until('authorize in dialog', () => document.querySelector('.modal-ux .auth-btn-wrapper .btn.authorize'))).click();
    (await until('close', () => document.querySelector('.modal-ux .btn-done'))).click();
  }
  const op = await until('operation', () => document.querySelector('.opblock'));
  await until('operation open', () => {
    if (op.classList.contains('is-open')) return true;
    op.querySelector('.opblock-summary-control').click();
    return false;
  });
  const execute = await until('execute', () => op.querySelector('.btn.execute')).catch(e => {
    throw new Error(e.message + ' in ' + op.className + ': ' + op.innerHTML.slice(0, 3000));
  });
  execute.click();
  return await until('status', () => [...op.querySelectorAll('.live-responses-table .response-col_status')]
    .map(c => c.textContent.trim()).find(t => /^[0-9]{3}$/.test(t)));
})
"#;

/// A DevTools client of one headless Chromium.
struct Browser {
    _child: tokio::process::Child,
    ws: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    next: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut child = headless_chromium(profile.path())
            .await
            .args(["--remote-debugging-port=0", "about:blank"])
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let line = lines.next_line().await.unwrap().expect("chromium is running");
                if let Some(u) = line.split("DevTools listening on ").nth(1) {
                    break u.trim().to_string();
                }
            }
        })
        .await
        .expect("chromium offers DevTools in time");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.unwrap();
        Self {
            _child: child,
            ws,
            next: 0,
            _profile: profile,
        }
    }

    async fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> Value {
        let r = self.try_send(method, params, session).await;
        r.unwrap_or_else(|e| panic!("{method}: {e}"))
    }

    async fn try_send(&mut self, method: &str, params: Value, session: Option<&str>) -> Result<Value, Value> {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
        loop {
            let m = tokio::time::timeout(Duration::from_secs(60), self.ws.next())
                .await
                .expect("DevTools answers")
                .unwrap()
                .unwrap();
            let Message::Text(text) = m else { continue };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] == id {
                return match v.get("error") {
                    Some(e) => Err(e.clone()),
                    None => Ok(v["result"].clone()),
                };
            }
        }
    }

    /// Opens `url` in a new page and gives what Swagger UI shows after [`EXECUTE`].
    async fn execute_on(&mut self, url: &str, key: Option<&str>) -> String {
        let target = self.send("Target.createTarget", json!({"url": url}), None).await;
        let attached = self
            .send(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
                None,
            )
            .await;
        let session = attached["sessionId"].as_str().unwrap().to_string();
        // Until the page itself (not the blank one before it) has loaded.
        let ready = json!({"expression": "location.href + ' ' + document.readyState", "returnByValue": true});
        for attempt in 0.. {
            assert!(attempt < 200, "the docs page did not load");
            let r = self.try_send("Runtime.evaluate", ready.clone(), Some(&session)).await;
            if r.is_ok_and(|r| r["result"]["value"] == format!("{url} complete")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let expr = format!("({EXECUTE})({})", serde_json::to_string(&key).unwrap());
        let r = self
            .send(
                "Runtime.evaluate",
                json!({"expression": expr, "awaitPromise": true, "returnByValue": true}),
                Some(&session),
            )
            .await;
        assert!(r.get("exceptionDetails").is_none(), "{r}");
        r["result"]["value"].as_str().unwrap().to_string()
    }
}

#[tokio::test]
async fn swagger_ui_authorizes_against_the_running_host() {
    let fx = Fixture::new();
    fx.function(
        "keyed",
        "probe",
        json!({"auth": {"type": "api_key", "in": "header", "name": "x-api-key"}}),
    );
    let (h, t, _state) = hosted(fx.path(), &[("root", &[Scope::Admin], None)]).await;
    let r = admin(
        &h,
        Method::POST,
        "/_fn/tenants/default/api-keys",
        &t["root"],
        Some(json!({"id": "docs"})),
    )
    .await;
    assert_eq!(r.status(), 201);
    let key = r.json::<Value>().await.unwrap()["key"].as_str().unwrap().to_string();

    let mut browser = Browser::start().await;
    let docs = h.url("/_fn/docs");
    assert_eq!(browser.execute_on(&docs, None).await, "401");
    assert_eq!(browser.execute_on(&docs, Some(&key)).await, "200");
    assert_eq!(browser.execute_on(&docs, Some("wfk_wrong")).await, "401");
    let _drained = h.host.stop().await.unwrap();
}
