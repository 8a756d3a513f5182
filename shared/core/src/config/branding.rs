//! How a product looks on the customer's pages (the GitHub sign-in and
//! Google sign-up pages): `[products.<id>.branding]` in `tollgate.toml`.
//!
//! ```toml
//! [products.acme-ci.branding]
//! app_url = "https://ci.acme.example/welcome"   # the "Continue to Acme CI" link
//! logo = "branding/acme-ci.svg"                 # beside tollgate.toml; inlined
//! accent_colour = "#0b6e4f"                     # the brand bar and the button
//! ```
//!
//! Every value ends up in a page whose Content-Security-Policy loads
//! nothing from anywhere, so each is checked here, strictly, once, at cold
//! start: the link is `https://` (plain `http://` only to a loopback host),
//! the logo is a small image of a known type carried inline as a `data:`
//! URI (the file is read where the config file is read,
//! [`super::Catalog::load`]), and the colour is `#rrggbb` and nothing else —
//! the page is built from the three parsed bytes, never from the text.

use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

/// The largest logo file accepted: it is carried inside every page.
pub const MAX_LOGO_BYTES: usize = 32 * 1024;
/// The longest `app_url` accepted.
pub const MAX_APP_URL_LEN: usize = 2048;

/// `[products.<id>.branding]` as written; validated into [`Branding`].
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BrandingConfig {
    #[serde(default)]
    pub app_url: Option<String>,
    /// A file, relative to the config file's directory.
    #[serde(default)]
    pub logo: Option<PathBuf>,
    #[serde(default)]
    pub accent_colour: Option<String>,
}

/// A product's validated branding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Branding {
    /// Where "Continue to <product>" leads.
    pub app_url: Option<AppUrl>,
    pub logo: Option<Logo>,
    pub accent_colour: Option<Colour>,
}

/// A colour given as `#rrggbb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colour {
    pub r: u8,
    pub g: u8,
    pub b: u8,
}

impl Colour {
    pub const BLACK: Colour = Colour { r: 0, g: 0, b: 0 };
    pub const WHITE: Colour = Colour {
        r: 255,
        g: 255,
        b: 255,
    };

    /// `#rrggbb` (either case), nothing else: no names, no `#rgb`, no
    /// spaces, no `rgb()`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let refused = || format!("`{text}` is not a colour of the form #rrggbb (e.g. \"#0b6e4f\")");
        let hex = text.strip_prefix('#').ok_or_else(refused)?;
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(refused());
        }
        let channel = |at: usize| {
            hex.get(at..at + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(refused)
        };
        Ok(Self {
            r: channel(0)?,
            g: channel(2)?,
            b: channel(4)?,
        })
    }

    /// `#rrggbb`, lowercase, written from the parsed bytes.
    pub fn hex(&self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.r, self.g, self.b)
    }

    /// Relative luminance (WCAG 2.x).
    pub fn luminance(&self) -> f64 {
        fn linear(c: u8) -> f64 {
            let c = f64::from(c) / 255.0;
            if c <= 0.04045 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        }
        0.2126 * linear(self.r) + 0.7152 * linear(self.g) + 0.0722 * linear(self.b)
    }

    /// WCAG contrast ratio with `other` (1 to 21).
    pub fn contrast(&self, other: &Colour) -> f64 {
        let (a, b) = (self.luminance(), other.luminance());
        let (light, dark) = if a >= b { (a, b) } else { (b, a) };
        (light + 0.05) / (dark + 0.05)
    }

    /// Black or white, whichever reads better on this colour: at least
    /// 4.58:1 whatever the colour, so text on an accent always passes
    /// WCAG AA.
    pub fn text_on(&self) -> Colour {
        if self.contrast(&Self::BLACK) >= self.contrast(&Self::WHITE) {
            Self::BLACK
        } else {
            Self::WHITE
        }
    }
}

/// The app's URL: `https://host[:port][/path][?query][#fragment]`, or
/// `http://` to `localhost`, `127.0.0.1` or `[::1]` (local development).
/// Printable ASCII only, no credentials, no quotes or angle brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppUrl(String);

impl AppUrl {
    pub fn parse(text: &str) -> Result<Self, String> {
        let refused = |why: &str| format!("`{text}` is not a usable app URL: {why}");
        if text.len() > MAX_APP_URL_LEN {
            return Err(format!(
                "the app URL is longer than {MAX_APP_URL_LEN} characters"
            ));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !c.is_ascii_graphic() || "\"'<>\\^`{|}".contains(*c))
        {
            return Err(refused(&format!("it contains {bad:?} (percent-encode it)")));
        }
        let (https, rest) = if let Some(rest) = text.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = text.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(refused("it must start with https://"));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.contains('@') {
            return Err(refused("it must not carry a user name or password"));
        }
        let (host, port) = split_port(authority);
        let host_ok = if let Some(inner) = host.strip_prefix('[') {
            inner.strip_suffix(']').is_some_and(|ip| {
                !ip.is_empty()
                    && ip
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            })
        } else {
            !host.is_empty()
                && !host.starts_with(['.', '-'])
                && !host.ends_with('-')
                && !host.contains("..")
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        };
        if !host_ok {
            return Err(refused("it has no valid host name"));
        }
        if let Some(port) = port
            && !(port.len() <= 5 && port.parse::<u16>().is_ok_and(|p| p > 0))
        {
            return Err(refused("its port is not a number from 1 to 65535"));
        }
        let loopback = matches!(
            host.to_ascii_lowercase().as_str(),
            "localhost" | "127.0.0.1" | "[::1]"
        );
        if !https && !loopback {
            return Err(refused(
                "it must start with https:// (http:// only for localhost, 127.0.0.1 or [::1])",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `host[:port]`; an IPv6 literal keeps its brackets.
fn split_port(authority: &str) -> (&str, Option<&str>) {
    let colon = if authority.starts_with('[') {
        authority
            .find(']')
            .and_then(|end| authority.get(end + 1..))
            .and_then(|after| after.strip_prefix(':'))
            .map(|port| (authority.len() - port.len() - 1, port))
    } else {
        authority
            .rfind(':')
            .and_then(|at| authority.get(at + 1..).map(|port| (at, port)))
    };
    match colon {
        Some((at, port)) => (authority.get(..at).unwrap_or(authority), Some(port)),
        None => (authority, None),
    }
}

/// An image carried inside the page as a `data:` URI: SVG, PNG, JPEG or
/// WebP, recognised by its content, at most [`MAX_LOGO_BYTES`]. Shown with
/// `<img>`, where an SVG's scripts never run and it loads nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logo {
    data_uri: String,
}

impl Logo {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() > MAX_LOGO_BYTES {
            return Err(format!(
                "the logo is larger than {} KiB (it is carried inside every page)",
                MAX_LOGO_BYTES / 1024
            ));
        }
        let mime = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            "image/png"
        } else if bytes.starts_with(b"\xff\xd8\xff") {
            "image/jpeg"
        } else if bytes.starts_with(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
            "image/webp"
        } else if std::str::from_utf8(bytes).is_ok_and(|t| t.contains("<svg")) {
            "image/svg+xml"
        } else {
            return Err("the logo is not an SVG, PNG, JPEG or WebP image".into());
        };
        Ok(Self {
            data_uri: format!(
                "data:{mime};base64,{}",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            ),
        })
    }

    /// `data:<type>;base64,<bytes>`: safe inside a quoted attribute.
    pub fn data_uri(&self) -> &str {
        &self.data_uri
    }
}

/// Validates a product's branding. `key(field)` names the field in
/// errors; `logo` paths are relative to `config_dir` and read with
/// `read_file` (the caller's choice of I/O). Errors are (key, message).
pub(super) fn check(
    raw: &BrandingConfig,
    key: &dyn Fn(&str) -> String,
    config_dir: &Path,
    read_file: &dyn Fn(&Path) -> std::io::Result<Vec<u8>>,
) -> Result<Branding, (String, String)> {
    let app_url = raw
        .app_url
        .as_deref()
        .map(AppUrl::parse)
        .transpose()
        .map_err(|m| (key("app_url"), m))?;
    let accent_colour = raw
        .accent_colour
        .as_deref()
        .map(Colour::parse)
        .transpose()
        .map_err(|m| (key("accent_colour"), m))?;
    let logo = match &raw.logo {
        None => None,
        Some(path) => {
            let file = config_dir.join(path);
            let bytes = read_file(&file)
                .map_err(|e| (key("logo"), format!("cannot read {}: {e}", file.display())))?;
            Some(
                Logo::from_bytes(&bytes)
                    .map_err(|m| (key("logo"), format!("{}: {m}", file.display())))?,
            )
        }
    };
    Ok(Branding {
        app_url,
        logo,
        accent_colour,
    })
}

/// Reads at most one byte more than a logo may have, so a huge file is
/// refused without being read whole.
pub(super) fn read_logo_file(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_LOGO_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_colour_is_exactly_hash_and_six_hex_digits() {
        assert_eq!(
            Colour::parse("#0B6e4f").unwrap(),
            Colour {
                r: 0x0b,
                g: 0x6e,
                b: 0x4f
            }
        );
        assert_eq!(Colour::parse("#0B6e4f").unwrap().hex(), "#0b6e4f");
        for bad in [
            "0b6e4f",
            "#0b6e4",
            "#0b6e4f0",
            "#0b6e4g",
            "red",
            "#fff",
            " #0b6e4f",
            "#0b6e4f;}body{display:none",
            "#0b6e4f</style>",
            "#+b6e4f",
            "",
        ] {
            let err = Colour::parse(bad).unwrap_err();
            assert!(err.contains("#rrggbb"), "{bad}: {err}");
        }
    }

    #[test]
    fn text_on_any_accent_has_at_least_aa_contrast() {
        for v in (0..=255u8).step_by(5) {
            for c in [
                Colour { r: v, g: v, b: v },
                Colour { r: v, g: 0, b: 0 },
                Colour { r: 0, g: v, b: 0 },
                Colour { r: 0, g: 0, b: v },
                Colour { r: v, g: v, b: 0 },
                Colour { r: 0, g: v, b: v },
                Colour {
                    r: v,
                    g: 255 - v,
                    b: v / 2,
                },
            ] {
                let ratio = c.contrast(&c.text_on());
                assert!(
                    ratio >= 4.5,
                    "{} on {}: {ratio}",
                    c.text_on().hex(),
                    c.hex()
                );
            }
        }
        assert!((Colour::BLACK.contrast(&Colour::WHITE) - 21.0).abs() < 1e-9);
        assert_eq!(Colour::parse("#ffff00").unwrap().text_on(), Colour::BLACK);
        assert_eq!(Colour::parse("#0b3d91").unwrap().text_on(), Colour::WHITE);
    }

    #[test]
    fn the_app_url_is_https_or_http_to_a_loopback_host() {
        for good in [
            "https://ci.acme.example",
            "https://ci.acme.example/welcome?from=github#top",
            "https://ci.acme.example:8443/",
            "http://localhost:3000/",
            "http://127.0.0.1:8080/app",
            "http://[::1]:8080",
            "https://[2001:db8::1]/x",
            "https://ci.acme.example/a%20b",
        ] {
            assert_eq!(AppUrl::parse(good).unwrap().as_str(), good);
        }
        for (bad, why) in [
            ("http://ci.acme.example/", "http:// only for localhost"),
            (
                "http://localhost.evil.example/",
                "http:// only for localhost",
            ),
            ("ftp://ci.acme.example/", "must start with https://"),
            ("javascript:alert(1)", "must start with https://"),
            ("//ci.acme.example", "must start with https://"),
            ("https://", "no valid host"),
            ("https:///path", "no valid host"),
            ("https://user:pw@ci.acme.example/", "user name or password"),
            ("https://ci.acme.example/\"onmouseover=x", "contains"),
            ("https://ci.acme.example/<script>", "contains"),
            ("https://ci.acme.example/a b", "contains"),
            ("https://ci.acme.example/ü", "contains"),
            ("https://ci.acme.example:0/", "port"),
            ("https://ci.acme.example:99999/", "port"),
            ("https://ci.acme.example:x/", "port"),
            ("https://-ci.acme.example/", "no valid host"),
            ("https://ci..acme.example/", "no valid host"),
        ] {
            let err = AppUrl::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
        let long = format!("https://ci.acme.example/{}", "a".repeat(MAX_APP_URL_LEN));
        assert!(AppUrl::parse(&long).unwrap_err().contains("longer than"));
    }

    #[test]
    fn a_logo_is_a_known_image_type_carried_inline() {
        let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"/>"#;
        let logo = Logo::from_bytes(svg).unwrap();
        assert!(
            logo.data_uri().starts_with("data:image/svg+xml;base64,"),
            "{}",
            logo.data_uri()
        );
        assert!(!logo.data_uri().contains(['"', '<', '>', '\'', ' ']));
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert!(
            Logo::from_bytes(png)
                .unwrap()
                .data_uri()
                .starts_with("data:image/png;base64,")
        );
        assert!(
            Logo::from_bytes(b"GIF89a")
                .unwrap_err()
                .contains("not an SVG, PNG")
        );
        let big = [b' '; MAX_LOGO_BYTES + 1];
        assert!(Logo::from_bytes(&big).unwrap_err().contains("32 KiB"));
    }

    const PRODUCT: &str = "[products.ci]\nname = \"Acme CI\"\n[products.ci.tiers.team]\n";

    fn load(branding: &str, files: &[(&str, &[u8])]) -> Result<crate::config::Catalog, String> {
        let text = format!("{PRODUCT}[products.ci.branding]\n{branding}");
        crate::config::Catalog::parse_with_files(&text, Path::new("conf/tollgate.toml"), &|p| {
            files
                .iter()
                .find(|(name, _)| Path::new(name) == p)
                .map(|(_, bytes)| bytes.to_vec())
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn branding_is_read_per_product_with_the_logo_beside_the_config() {
        let svg: &[u8] = b"<svg xmlns='http://www.w3.org/2000/svg'/>";
        let c = load(
            "app_url = \"https://ci.acme.example/\"\nlogo = \"logo.svg\"\naccent_colour = \"#0B6E4F\"\n",
            &[("conf/logo.svg", svg)],
        )
        .unwrap();
        let b = c.branding("ci").unwrap();
        assert_eq!(
            b.app_url.as_ref().unwrap().as_str(),
            "https://ci.acme.example/"
        );
        assert_eq!(b.accent_colour.unwrap().hex(), "#0b6e4f");
        assert!(
            b.logo
                .as_ref()
                .unwrap()
                .data_uri()
                .starts_with("data:image/svg+xml;base64,")
        );
        assert_eq!(
            load("", &[]).unwrap().branding("ci"),
            Some(&Branding::default())
        );
        let plain = crate::config::Catalog::parse(PRODUCT, Path::new("t.toml")).unwrap();
        assert_eq!(plain.branding("ci"), None);
    }

    #[test]
    fn branding_mistakes_name_the_file_and_the_key() {
        for (branding, key, says) in [
            (
                "accent_colour = \"green\"\n",
                "products.ci.branding.accent_colour",
                "#rrggbb",
            ),
            (
                "app_url = \"http://ci.acme.example\"\n",
                "products.ci.branding.app_url",
                "https://",
            ),
            (
                "logo = \"missing.svg\"\n",
                "products.ci.branding.logo",
                "conf/missing.svg",
            ),
            (
                "logo = \"logo.gif\"\n",
                "products.ci.branding.logo",
                "not an SVG, PNG",
            ),
            ("colour = \"#000000\"\n", "colour", "unknown field"),
        ] {
            let err = load(branding, &[("conf/logo.gif", b"GIF89a")]).unwrap_err();
            assert!(err.contains("conf/tollgate.toml"), "{err}");
            assert!(err.contains(key) && err.contains(says), "{branding}: {err}");
        }
        // Without a reader (`Catalog::parse`), a logo is refused, not skipped.
        let err = crate::config::Catalog::parse(
            &format!("{PRODUCT}[products.ci.branding]\nlogo = \"logo.svg\"\n"),
            Path::new("t.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("products.ci.branding.logo"), "{err}");
    }

    #[test]
    fn load_reads_the_logo_relative_to_the_config_file() {
        let dir = std::env::temp_dir().join(format!("tollgate-branding-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("logo.svg"),
            b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        )
        .unwrap();
        std::fs::write(dir.join("big.svg"), vec![b' '; MAX_LOGO_BYTES * 3]).unwrap();
        let config = dir.join("tollgate.toml");
        std::fs::write(
            &config,
            format!("{PRODUCT}[products.ci.branding]\nlogo = \"logo.svg\"\n"),
        )
        .unwrap();
        let c = crate::config::Catalog::load(&config).unwrap();
        assert!(c.branding("ci").unwrap().logo.is_some());
        std::fs::write(
            &config,
            format!("{PRODUCT}[products.ci.branding]\nlogo = \"big.svg\"\n"),
        )
        .unwrap();
        let err = crate::config::Catalog::load(&config)
            .unwrap_err()
            .to_string();
        assert!(err.contains("larger than 32 KiB"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
