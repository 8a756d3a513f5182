//! The reference for the cold-start budget (README "Budgets, measured"): a bare `lambda_http`
//! function that does nothing at init. `tests/benches/functions.rs` compares each
//! Tollgate function's process-start → first-poll time against this one.

use lambda_http::{Body, Error, Request, Response, run, service_fn};

async fn hello(_req: Request) -> Result<Response<Body>, Error> {
    Ok(Response::new(Body::from("hello")))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(hello)).await
}
