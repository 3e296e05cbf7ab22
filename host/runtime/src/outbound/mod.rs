//! Outgoing HTTP from guests: denied unless `allowed_outbound_hosts` lists
//! the destination; loopback, link-local and private addresses only when an
//! entry names the host exactly.

mod send;

use std::net::SocketAddr;
use std::sync::Arc;

use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use wasmfn_manifest::{OutboundRule, is_internal_address};

use super::observe::OutboundOutcome;
use super::state::TagCell;

/// The `wasi:http` hooks of one request.
pub(crate) struct OutboundHooks {
    pub(crate) rules: Arc<[OutboundRule]>,
    pub(crate) tags: Arc<TagCell>,
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

/// Why a destination was refused, for the log.
fn check_rules(rules: &[OutboundRule], scheme: &str, host: &str, port: u16) -> Result<(), &'static str> {
    if !rules.iter().any(|r| r.allows(scheme, host, port)) {
        return Err("not listed in `allowed_outbound_hosts`");
    }
    Ok(())
}

impl OutboundHooks {
    fn deny(&self, target: &str, reason: &str) -> SendFuture {
        tracing::warn!(
            function = %self.tags.function(),
            request_id = %self.tags.request_id(),
            target,
            reason,
            "outbound request denied"
        );
        Box::new(async { Err(Error::HttpRequestDenied) })
    }
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        // The request's observer sees every outbound request (and may add
        // a trace context to its headers); it is told how each ended.
        let done = self.tags.observer().and_then(|o| {
            let host = request.uri().host().unwrap_or_default().to_ascii_lowercase();
            let (method, uri) = (request.method().clone(), request.uri().clone());
            o.outbound(&method, &uri, &host, request.headers_mut())
        });
        let sent = self.check_and_send(request, options);
        match done {
            None => sent,
            Some(done) => Box::new(async move {
                let result = Box::into_pin(sent).await;
                let (outcome, status) = match &result {
                    Ok((resp, _)) => (OutboundOutcome::Ok, Some(resp.status().as_u16())),
                    Err(Error::HttpRequestDenied) => (OutboundOutcome::Denied, None),
                    Err(_) => (OutboundOutcome::Error, None),
                };
                done(outcome, status);
                result
            }),
        }
    }
}

impl OutboundHooks {
    /// Checks the destination against the rules and sends the request.
    fn check_and_send(&self, request: http::Request<WasiBody>, options: Option<RequestOptions>) -> SendFuture {
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("http").to_ascii_lowercase();
        let Some(authority) = uri.authority() else {
            return self.deny(&uri.to_string(), "no host in the request");
        };
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let port = authority.port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
        let target = format!("{scheme}://{host}:{port}");
        if let Err(reason) = check_rules(&self.rules, &scheme, &host, port) {
            return self.deny(&target, reason);
        }
        let named = self
            .rules
            .iter()
            .any(|r| r.names_exactly(&host) && r.allows(&scheme, &host, port));
        if let Ok(ip) = host.parse::<std::net::IpAddr>()
            && is_internal_address(ip)
            && !named
        {
            return self.deny(
                &target,
                "internal address not named exactly in `allowed_outbound_hosts`",
            );
        }
        let tags = self.tags.clone();
        Box::new(async move {
            let addrs = match host.parse::<std::net::IpAddr>() {
                // Checked above.
                Ok(ip) => vec![SocketAddr::new(ip, port)],
                // Named exactly over HTTPS: connected to by its name.
                Err(_) if named && scheme != "http" => Vec::new(),
                Err(_) => {
                    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
                        .await
                        .map_err(|_| Error::DnsError {
                            rcode: Some("lookup failed".into()),
                            info_code: None,
                        })?
                        .collect();
                    // A name that resolves into the host's own network is
                    // refused like the address itself would be.
                    if !named && let Some(a) = addrs.iter().find(|a| is_internal_address(a.ip())) {
                        tracing::warn!(
                            function = %tags.function(),
                            request_id = %tags.request_id(),
                            target,
                            address = %a.ip(),
                            "outbound request denied: name resolves to an internal address"
                        );
                        return Err(Error::HttpRequestDenied);
                    }
                    addrs
                }
            };
            // Plain HTTP connects to the addresses just checked: looking the
            // name up again would let a second DNS answer (a short TTL) point
            // the connection into the host's network. HTTPS connects by name,
            // to which the server's certificate binds it.
            if scheme == "http" {
                return send::send_http(request, &addrs, options).await;
            }
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((res.map(BodyExt::boxed_unsync), Box::new(io) as send::IoFuture))
        })
    }
}
