//! The shell of the customer-facing pages (GitHub sign-in, Google sign-up):
//! one small self-contained HTML document, and the escaping every value put
//! into it goes through.

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

/// A small self-contained page: inline style, no scripts, no external assets.
/// `body` must already be escaped HTML.
pub fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body{{font:16px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f6f8fa;color:#1f2328}}
main{{max-width:40rem;margin:3rem auto;padding:0 1rem}}
h1{{font-size:1.5rem}}
.card{{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:1rem 1.25rem;margin:1rem 0}}
.card h2{{font-size:1.15rem;margin:.25rem 0 .5rem}}
.trial{{background:#ddf4ff;border:1px solid #54aeff;border-radius:6px;padding:.5rem .75rem;margin:.5rem 0}}
.error{{border-color:#ff8182;background:#ffebe9}}
dl{{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}}
dt{{color:#59636e}}
dd{{margin:0}}
a.button{{display:inline-block;background:#1f883d;color:#fff;padding:.4rem 1rem;border-radius:6px;text-decoration:none}}
</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"#,
        title = escape(title),
    )
}
