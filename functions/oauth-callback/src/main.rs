//! Lambda entry point: wiring only; the handler lives in `tollgate::functions::oauth_callback`.

fn main() -> std::process::ExitCode {
    tollgate::functions::run::<tollgate::functions::oauth_callback::OauthCallback>()
}
