//! Lambda entry point: wiring only; the handler lives in `tollgate::functions::entitlement_check`.

fn main() -> std::process::ExitCode {
    tollgate::functions::run::<tollgate::functions::entitlement_check::EntitlementCheck>()
}
