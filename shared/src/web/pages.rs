//! The shell of the customer-facing pages (GitHub sign-in, Google sign-up):
//! one small self-contained HTML document under the product's name (and
//! its logo and accent colour, `[products.<id>.branding]`), the escaping
//! every value put into it goes through, and the Content-Security-Policy
//! that lets exactly that page's own inline style and inline logo load.
//!
//! Readable on a phone (one column, nothing wider than the screen), with
//! the accessible basics: a language, one `h1`, text contrast of at least
//! 4.5:1 (text on the accent colour is black or white, whichever reads
//! better), a visible keyboard focus. `tests/tests/browser.rs` checks these
//! in a real browser.

use base64::Engine;
use sha2::{Digest, Sha256};

use crate::config::{Branding, Catalog, Colour};
use crate::model::Marketplace;

/// Escapes text for HTML element content and quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Whose pages these are: the product's display name and branding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Brand {
    /// The product's `name` (else its id); empty: no brand bar.
    pub name: String,
    pub branding: Branding,
}

/// The accent when none is configured.
const DEFAULT_ACCENT: Colour = Colour {
    r: 0x1f,
    g: 0x88,
    b: 0x3d,
};

impl Brand {
    /// The product `id` of `catalog`: its `name` (else the id) and branding.
    pub fn of(catalog: &Catalog, id: &str) -> Self {
        let name = catalog
            .product(id)
            .and_then(|p| p.name.clone())
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| id.to_owned());
        Self {
            name,
            branding: catalog.branding(id).cloned().unwrap_or_default(),
        }
    }

    /// The product a marketplace's pages speak for: the marketplace's
    /// default product, else the first it maps, else the first configured.
    pub fn for_marketplace(catalog: &Catalog, marketplace: Marketplace) -> Self {
        let id = catalog
            .product_for(marketplace, None)
            .or_else(|| catalog.products().next().map(|(id, _)| id))
            .unwrap_or_default();
        Self::of(catalog, id)
    }

    /// "Continue to <product>" as a button, when an app URL is configured.
    pub fn continue_link(&self) -> Option<String> {
        let url = self.branding.app_url.as_ref()?;
        let name = if self.name.is_empty() {
            "the app"
        } else {
            &self.name
        };
        Some(format!(
            "<p class=\"next\"><a class=\"button\" href=\"{}\">Continue to {}</a></p>\n",
            escape(url.as_str()),
            escape(name)
        ))
    }
}

/// A rendered page and the Content-Security-Policy to send with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub html: String,
    pub csp: String,
}

/// The page's style: the accent enters only as `#rrggbb` written from
/// parsed bytes ([`Colour::hex`]).
fn style(accent: Colour) -> String {
    let on_accent = accent.text_on().hex();
    let accent = accent.hex();
    format!(
        "*{{box-sizing:border-box}}\n\
         body{{font:16px/1.5 system-ui,-apple-system,\"Segoe UI\",sans-serif;margin:0;background:#f6f8fa;color:#1f2328;overflow-wrap:break-word}}\n\
         .brand{{background:#fff;border-top:4px solid {accent};border-bottom:1px solid #d0d7de}}\n\
         .brand div{{max-width:40rem;margin:0 auto;padding:.75rem 1rem;display:flex;align-items:center;gap:.75rem;font-weight:600;font-size:1.125rem}}\n\
         .brand img{{height:2rem;width:auto;max-width:8rem}}\n\
         main{{max-width:40rem;margin:2rem auto;padding:0 1rem}}\n\
         h1{{font-size:1.5rem;line-height:1.25;margin:0 0 1rem}}\n\
         .card{{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:1rem 1.25rem;margin:1rem 0}}\n\
         .card h2{{font-size:1.15rem;margin:.25rem 0 .5rem}}\n\
         .card>:first-child{{margin-top:0}}.card>:last-child{{margin-bottom:0}}\n\
         .trial{{background:#ddf4ff;border:1px solid #54aeff;border-radius:6px;padding:.5rem .75rem;margin:.5rem 0}}\n\
         .error{{border-color:#ff8182;background:#ffebe9}}\n\
         dl{{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:.25rem 1rem;margin:0}}\n\
         dt{{color:#59636e}}\n\
         dd{{margin:0;min-width:0;overflow-wrap:anywhere}}\n\
         code{{overflow-wrap:anywhere}}\n\
         time{{white-space:nowrap}}\n\
         a{{color:#0550ae}}\n\
         a.button{{display:inline-block;background:{accent};color:{on_accent};padding:.5rem 1rem;border-radius:6px;text-decoration:none;font-weight:600}}\n\
         a:focus-visible,button:focus-visible{{outline:3px solid #1f2328;outline-offset:2px}}\n\
         @media (max-width:30rem){{main{{margin-top:1rem}}.card{{padding:.75rem 1rem}}}}\n"
    )
}

/// `brand`'s page: the brand bar, then `body` (already escaped HTML) in
/// `<main>`. No scripts and nothing external: the CSP allows this page's
/// own `<style>` by its hash and, with a logo, `data:` images.
pub fn render(brand: &Brand, title: &str, body: &str) -> Page {
    let style = style(brand.branding.accent_colour.unwrap_or(DEFAULT_ACCENT));
    let logo = brand.branding.logo.as_ref();
    let bar = if brand.name.is_empty() && logo.is_none() {
        String::new()
    } else {
        // The name is beside the logo, so the image itself is decorative.
        let img = logo
            .map(|l| format!("<img src=\"{}\" alt=\"\">", escape(l.data_uri())))
            .unwrap_or_default();
        format!(
            "<header class=\"brand\"><div>{img}<span>{}</span></div></header>\n",
            escape(&brand.name)
        )
    };
    let title = match (title.is_empty(), brand.name.is_empty()) {
        (false, false) => format!("{title} · {}", brand.name),
        (true, false) => brand.name.clone(),
        _ => title.to_owned(),
    };
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n<style>{style}</style>\n</head>\n<body>\n{bar}<main>\n{body}</main>\n</body>\n</html>\n",
        title = escape(&title),
    );
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style.as_bytes()));
    let images = if logo.is_some() {
        "; img-src data:"
    } else {
        ""
    };
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{hash}'{images}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    Page { html, csp }
}

/// A day, as `<time>` (kept on one line): `2026-03-06`.
pub fn day(t: chrono::DateTime<chrono::Utc>) -> String {
    let d = t.format("%Y-%m-%d");
    format!("<time datetime=\"{d}\">{d}</time>")
}

/// An unbranded page's HTML (tools that only read a page's text).
pub fn page(title: &str, body: &str) -> String {
    render(&Brand::default(), title, body).html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AppUrl, Logo};

    fn brand(logo: bool) -> Brand {
        Brand {
            name: "Acme <CI>".into(),
            branding: Branding {
                app_url: Some(AppUrl::parse("https://ci.acme.example/?a=1&b=2").unwrap()),
                logo: logo.then(|| Logo::from_bytes(b"<svg/>").unwrap()),
                accent_colour: Some(Colour::parse("#ffd33d").unwrap()),
            },
        }
    }

    #[test]
    fn the_csp_allows_exactly_the_pages_own_style_and_inline_logo() {
        let page = render(&brand(true), "Hi", "<h1>Hi</h1>\n");
        let style = page
            .html
            .split_once("<style>")
            .and_then(|(_, rest)| rest.split_once("</style>"))
            .unwrap()
            .0;
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style));
        assert_eq!(
            page.csp,
            format!(
                "default-src 'none'; style-src 'sha256-{hash}'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            )
        );
        assert!(page.html.contains("<img src=\"data:image/svg+xml;base64,"));
        let plain = render(&brand(false), "Hi", "<h1>Hi</h1>\n");
        assert!(!plain.csp.contains("img-src") && !plain.html.contains("<img"));
        assert!(!plain.csp.contains("unsafe-inline"));
    }

    #[test]
    fn brand_values_are_escaped_and_the_accent_gets_readable_text() {
        let b = brand(false);
        let page = render(&b, "Signed <up>", "<h1>x</h1>\n");
        assert!(page.html.contains("<span>Acme &lt;CI&gt;</span>"));
        assert!(
            page.html
                .contains("<title>Signed &lt;up&gt; · Acme &lt;CI&gt;</title>")
        );
        assert!(
            page.html.contains("background:#ffd33d;color:#000000"),
            "yellow takes black text"
        );
        assert_eq!(
            b.continue_link().unwrap(),
            "<p class=\"next\"><a class=\"button\" href=\"https://ci.acme.example/?a=1&amp;b=2\">Continue to Acme &lt;CI&gt;</a></p>\n"
        );
        assert_eq!(Brand::default().continue_link(), None);
        let unbranded = page_for_tools();
        assert!(!unbranded.contains("class=\"brand\""));
    }

    fn page_for_tools() -> String {
        page("T", "<h1>T</h1>")
    }

    #[test]
    fn the_brand_is_the_marketplaces_product() {
        let catalog = Catalog::parse(
            "[products.a.tiers.t]\n[products.b]\nname = \"Bee\"\n[products.b.tiers.t]\n\
             [marketplaces.github]\nproduct = \"b\"\n",
            std::path::Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(
            Brand::for_marketplace(&catalog, Marketplace::Github).name,
            "Bee"
        );
        assert_eq!(Brand::for_marketplace(&catalog, Marketplace::Gcp).name, "a");
    }
}
