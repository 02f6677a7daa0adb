//! The console's CSS and JavaScript, compiled into the binary
//! (`include_bytes!`): the console works with no network but the PBX's.
//! Each file is served at `/console/assets/<name>-<hash>.<ext>`, where
//! `<hash>` is the start of its SHA-256, with a one-year immutable cache:
//! a new build changes the URL, never a cached file's meaning.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
    /// `console-1a2b3c4d5e6f.css`
    file: String,
}

const FILES: [(&str, &str, &[u8]); 2] = [
    (
        "console.css",
        "text/css; charset=utf-8",
        include_bytes!("../../assets/console.css"),
    ),
    (
        "console.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../assets/console.js"),
    ),
];

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|&(name, content_type, bytes)| {
            let hash = crate::random::hex(&Sha256::digest(bytes)[..6]);
            let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
            Asset {
                name,
                content_type,
                bytes,
                file: format!("{stem}-{hash}.{ext}"),
            }
        })
        .collect()
});

/// The hashed URL of an asset by its plain name.
pub fn url(name: &str) -> String {
    let file = ASSETS
        .iter()
        .find(|a| a.name == name)
        .map(|a| a.file.as_str())
        .unwrap_or(name);
    format!("/console/assets/{file}")
}

pub async fn serve(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.file == file) {
        Some(asset) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(asset.content_type),
                ),
                (
                    header::CACHE_CONTROL,
                    HeaderValue::from_static("public, max-age=31536000, immutable"),
                ),
                (
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ),
            ],
            asset.bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_content_hash() {
        let css = url("console.css");
        assert!(css.starts_with("/console/assets/console-"), "{css}");
        assert!(css.ends_with(".css"));
        let hash = Sha256::digest(FILES[0].2);
        assert!(css.contains(&crate::random::hex(&hash[..6])), "{css}");
    }
}
