//! Folder paths to route patterns.

use wasmfn_routing::{PatternError, RoutePattern, Segment, valid_param_name};

/// Why a folder path cannot be a route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FolderRouteError {
    /// A folder name has unclosed brackets, mixes text and brackets, or `[[` without `...`.
    #[error("segment `{0}` is not closed or mixes text and brackets (expected `[name]`, `[...name]` or `[[...name]]`)")]
    BadBrackets(String),
    /// A bracketed folder's parameter name is empty, too long or has other characters.
    #[error("segment `{0}`: parameter names are 1-64 characters of `A-Z a-z 0-9 _ -`")]
    BadName(String),
    /// An optional catch-all (`[[...name]]`) folder has folders below it.
    #[error("segment `{0}`: an optional catch-all must be the last folder")]
    OptionalNotLast(String),
    /// The route the folders make is not a valid pattern (e.g. a parameter name repeats).
    #[error("{0}")]
    Pattern(#[from] PatternError),
}

/// The routes a folder path (relative to the functions root) stands for:
/// one, or two for an optional catch-all (with and without the rest).
pub fn folder_routes(rel: &[String]) -> Result<Vec<RoutePattern>, FolderRouteError> {
    let mut segments = Vec::new();
    let mut optional = false;
    for (i, name) in rel.iter().enumerate() {
        if let Some(inner) = name.strip_prefix("[[").and_then(|n| n.strip_suffix("]]")) {
            let param = inner
                .strip_prefix("...")
                .ok_or_else(|| FolderRouteError::BadBrackets(name.clone()))?;
            if !valid_param_name(param) {
                return Err(FolderRouteError::BadName(name.clone()));
            }
            if i + 1 != rel.len() {
                return Err(FolderRouteError::OptionalNotLast(name.clone()));
            }
            optional = true;
            segments.push(Segment::CatchAll(param.to_string()));
        } else if let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
            if inner.contains(['[', ']']) {
                return Err(FolderRouteError::BadBrackets(name.clone()));
            }
            let (catch_all, param) = match inner.strip_prefix("...") {
                Some(p) => (true, p),
                None => (false, inner),
            };
            if !valid_param_name(param) {
                return Err(FolderRouteError::BadName(name.clone()));
            }
            segments.push(if catch_all {
                Segment::CatchAll(param.to_string())
            } else {
                Segment::Param(param.to_string())
            });
        } else if name.contains(['[', ']']) {
            return Err(FolderRouteError::BadBrackets(name.clone()));
        } else {
            segments.push(Segment::Static(name.clone()));
        }
    }
    let text = format!("/{}", rel.join("/"));
    let full = RoutePattern::from_segments(&text, segments.clone())?;
    if optional {
        segments.pop();
        let bare = RoutePattern::from_segments(&text, segments)?;
        Ok(vec![bare, full])
    } else {
        Ok(vec![full])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(path: &str) -> Result<String, String> {
        let rel: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(String::from).collect();
        folder_routes(&rel)
            .map(|v| v.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(" "))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn folder_to_route() {
        let cases = [
            ("", "/"),
            ("hello", "/hello"),
            ("users/[id]", "/users/{id}"),
            ("users/[id]/posts", "/users/{id}/posts"),
            ("files/[...path]", "/files/{...path}"),
            ("docs/[[...path]]", "/docs /docs/{...path}"),
            ("[[...all]]", "/ /{...all}"),
            ("café", "/café"),
        ];
        for (input, want) in cases {
            assert_eq!(routes(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn bad_folders() {
        let cases = [
            ("users/[id", "segment `[id` is not closed"),
            ("users/id]", "segment `id]` is not closed"),
            ("users/x[id]", "segment `x[id]` is not closed"),
            ("users/[]", "segment `[]`: parameter names"),
            ("users/[a b]", "segment `[a b]`: parameter names"),
            ("[[id]]", "segment `[[id]]` is not closed"),
            ("[[...a]]/x", "must be the last folder"),
            ("[...a]/x", "catch-all `{...a}` must be the last segment"),
            ("[a]/[a]", "parameter `a` appears twice"),
        ];
        for (input, want) in cases {
            let err = routes(input).expect_err(input);
            assert!(err.contains(want), "{input}: {err}");
        }
    }
}
