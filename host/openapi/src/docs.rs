//! Interactive docs: Swagger UI, every asset compiled into the binary.

/// `(file name, content type, bytes)` of each embedded asset.
pub const SWAGGER_ASSETS: [(&str, &str, &[u8]); 2] = [
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/swagger-ui/swagger-ui-bundle.js"),
    ),
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/swagger-ui/swagger-ui.css"),
    ),
];

/// The docs page; `assets` is the URL prefix of the embedded assets and
/// `spec` the URL of the document, both relative to the host.
pub fn docs_page(assets: &str, spec: &str) -> String {
    format!(
        r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wasmfn API</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "{spec}",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: true
}});
</script>
</body>
</html>
"##
    )
}
