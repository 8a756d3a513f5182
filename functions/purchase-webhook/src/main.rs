//! Lambda entry point: wiring only; the handler lives in `tollgate::functions::purchase_webhook`.

fn main() -> std::process::ExitCode {
    tollgate::functions::run::<tollgate::functions::purchase_webhook::PurchaseWebhook>()
}
