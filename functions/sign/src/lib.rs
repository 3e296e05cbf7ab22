//! `/sign`: HMAC-SHA256 signatures under a key the function never sees in
//! its manifest. `fn.config.json` names the secret (`"secrets":
//! ["signing_key"]`); the operator gives its value (`WASMFN_SECRET_SIGNING_KEY`,
//! a file in `--secrets-dir`, or `PUT /_fn/secrets/signing_key`), and a
//! host without it refuses to load the function, naming the secret.

use hmac::{Hmac, Mac};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use wasmfn_sdk::{HttpError, Json, secret};

/// A message to sign.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Message {
    /// The text to sign, up to 4096 characters.
    #[schemars(length(max = 4096), example = &"order 1234: 3 lamps")]
    message: String,
}

/// A message's signature.
#[derive(Serialize, JsonSchema)]
struct Signature {
    /// Always `HMAC-SHA256`.
    algorithm: &'static str,
    /// The signature, 64 lowercase hexadecimal digits.
    signature: String,
}

/// A message and the signature to check.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Signed {
    /// The text that was signed.
    #[schemars(length(max = 4096), example = &"order 1234: 3 lamps")]
    message: String,
    /// Its signature as `POST /sign` answered it.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    signature: String,
}

/// Whether a signature is the message's.
#[derive(Serialize, JsonSchema)]
struct Verdict {
    /// `true` when the signature is the message's under this host's key.
    valid: bool,
}

/// The HMAC keyed with the secret `signing_key`.
fn keyed() -> Result<Hmac<Sha256>, HttpError> {
    // The host refuses to load the function without the secret; `None`
    // here would mean the manifest no longer lists it.
    let key = secret::get("signing_key").ok_or_else(|| HttpError::internal("the secret `signing_key` is not given"))?;
    Hmac::<Sha256>::new_from_slice(key.as_bytes())
        .map_err(|e| HttpError::internal(format!("the signing key cannot be used: {e}")))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

fn sign(Json(m): Json<Message>) -> Result<Json<Signature>, HttpError> {
    let mut mac = keyed()?;
    mac.update(m.message.as_bytes());
    Ok(Json(Signature {
        algorithm: "HMAC-SHA256",
        signature: hex(&mac.finalize().into_bytes()),
    }))
}

fn verify(Json(s): Json<Signed>) -> Result<Json<Verdict>, HttpError> {
    let mut mac = keyed()?;
    mac.update(s.message.as_bytes());
    // `verify_slice` compares in constant time.
    let valid = unhex(&s.signature).is_some_and(|sig| mac.verify_slice(&sig).is_ok());
    Ok(Json(Verdict { valid }))
}

wasmfn_sdk::function! {
    title: "Sign",
    /// Signs a message.
    ///
    /// HMAC-SHA256 under the host's secret `signing_key`.
    post "/" => sign,
    /// Verifies a signature.
    post "/verify" => verify,
}
