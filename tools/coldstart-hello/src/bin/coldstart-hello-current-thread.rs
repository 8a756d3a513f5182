//! A context reference for `make bench` (README "Budgets, measured"): the
//! bare hello-world of `coldstart-hello` on the current-thread runtime the
//! Tollgate functions use (`tollgate::functions::run`). Its ratio to the bare
//! hello is what the runtime choice saves by itself, so the functions' own
//! start-up work can be read against a like-for-like hello too.

use lambda_http::{Body, Error, Request, Response, run, service_fn};

async fn hello(_req: Request) -> Result<Response<Body>, Error> {
    Ok(Response::new(Body::from("hello")))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(hello)).await
}
