//! Lambda entry point: wiring only; the handler lives in `tollgate::functions::pubsub_push`.

fn main() -> std::process::ExitCode {
    tollgate::functions::run::<tollgate::functions::pubsub_push::PubsubPush>()
}
