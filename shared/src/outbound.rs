//! Reading the replies of outbound calls (GitHub, Google, the Lambda
//! secrets extension) with a size cap enforced *while streaming*: a reply
//! is read chunk by chunk and the read stops as soon as it would pass the
//! cap, so a server that sends an endless or oversized body costs at most
//! the cap plus one chunk of memory, never the whole body. A
//! `Content-Length` above the cap is refused before any of the body is read.
//!
//! Imports nothing of `web/` or the marketplaces: every client uses it.

/// Cap for API replies (GitHub pages, Procurement resources) when the
/// client has none of its own.
pub const MAX_API_REPLY: usize = 1024 * 1024;

/// Why a reply's body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The body is (or says it is) larger than `cap` bytes; reading stopped.
    #[error("reply larger than {cap} bytes")]
    TooLarge { cap: usize },
    /// The connection failed while reading.
    #[error("reply unreadable")]
    Transport(#[source] reqwest::Error),
}

/// Reads `res`'s body, at most `cap` bytes, without buffering more than
/// `cap` plus the chunk that passed it.
pub async fn read_capped(mut res: reqwest::Response, cap: usize) -> Result<Vec<u8>, ReadError> {
    // A declared length above the cap: refused before reading. A length
    // under it is not trusted either: the loop below counts.
    if res
        .content_length()
        .is_some_and(|n| n > u64::try_from(cap).unwrap_or(u64::MAX))
    {
        return Err(ReadError::TooLarge { cap });
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(ReadError::Transport)? {
        if body.len().saturating_add(chunk.len()) > cap {
            // Dropping `res` closes the connection: nothing more is read.
            return Err(ReadError::TooLarge { cap });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
pub(crate) mod testing {
    //! A local HTTP/1.1 server on 127.0.0.1 for the outbound clients'
    //! tests: answers every request with a canned head and body, counting
    //! the body bytes it managed to write.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// What the server sends after the status line and headers.
    #[derive(Clone, Copy)]
    pub(crate) enum Body {
        /// `Transfer-Encoding: chunked`, `chunk` bytes per chunk, forever.
        Endless { chunk: usize },
        /// `Content-Length: declared`, then `sent` bytes (a lie either way).
        Declared { declared: u64, sent: usize },
        /// A plain body of these bytes with its true length.
        Exact(&'static [u8]),
    }

    pub(crate) struct Server {
        pub(crate) base: String,
        /// Body bytes written to the socket so far (all connections).
        pub(crate) written: Arc<AtomicU64>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Server {
        /// Waits until every connection so far has ended (the client hung
        /// up), at most 10 s, and returns the body bytes written.
        pub(crate) async fn finish(self) -> u64 {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(10), self.task).await;
            self.written.load(Ordering::SeqCst)
        }
    }

    /// Serves `body` to `connections` connections, then stops.
    pub(crate) async fn serve(body: Body, connections: usize) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let written = Arc::new(AtomicU64::new(0));
        let count = Arc::clone(&written);
        let task = tokio::spawn(async move {
            for _ in 0..connections {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                // The request head, up to the blank line.
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = answer(&mut stream, body, &count).await;
            }
        });
        Server {
            base,
            written,
            task,
        }
    }

    async fn answer(
        stream: &mut tokio::net::TcpStream,
        body: Body,
        count: &AtomicU64,
    ) -> std::io::Result<()> {
        match body {
            Body::Endless { chunk } => {
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
                    .await?;
                let mut framed = format!("{chunk:x}\r\n").into_bytes();
                framed.extend(std::iter::repeat_n(b' ', chunk));
                framed.extend_from_slice(b"\r\n");
                // Until the client hangs up (a write then fails).
                loop {
                    stream.write_all(&framed).await?;
                    count.fetch_add(chunk as u64, Ordering::SeqCst);
                }
            }
            Body::Declared { declared, sent } => {
                stream
                    .write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {declared}\r\n\r\n").as_bytes())
                    .await?;
                for _ in 0..sent / 1024 {
                    stream.write_all(&[b' '; 1024]).await?;
                    count.fetch_add(1024, Ordering::SeqCst);
                }
                stream.shutdown().await
            }
            Body::Exact(bytes) => {
                stream
                    .write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n", bytes.len()).as_bytes())
                    .await?;
                stream.write_all(bytes).await?;
                count.fetch_add(bytes.len() as u64, Ordering::SeqCst);
                stream.shutdown().await
            }
        }
    }

    /// Slack for what the kernel's socket buffers and the HTTP stack take
    /// in before the client sees a chunk: bytes the server could write
    /// that the reader never asked for. A client that buffered whole
    /// bodies would read everything (an endless body: forever).
    pub(crate) const IN_FLIGHT: u64 = 8 * 1024 * 1024;
}

#[cfg(test)]
mod tests {
    use super::testing::{Body, IN_FLIGHT, serve};
    use super::*;
    use std::time::Duration;

    const CAP: usize = 64 * 1024;
    /// Upper bound only: a correct read ends as soon as the cap is passed.
    const LIMIT: Duration = Duration::from_secs(20);

    async fn get(base: &str) -> reqwest::Response {
        reqwest::Client::new().get(base).send().await.unwrap()
    }

    #[tokio::test]
    async fn an_endless_body_stops_at_the_cap() {
        let server = serve(Body::Endless { chunk: 8 * 1024 }, 1).await;
        let res = get(&server.base).await;
        let read = tokio::time::timeout(LIMIT, read_capped(res, CAP))
            .await
            .expect("the read must stop at the cap, not wait for the end");
        assert!(
            matches!(read, Err(ReadError::TooLarge { cap: CAP })),
            "{read:?}"
        );
        let written = server.finish().await;
        assert!(written < CAP as u64 + IN_FLIGHT, "{written} bytes written");
    }

    #[tokio::test]
    async fn a_large_declared_length_is_refused_before_reading() {
        let server = serve(
            Body::Declared {
                declared: 1 << 40,
                sent: 0,
            },
            1,
        )
        .await;
        let read = tokio::time::timeout(LIMIT, read_capped(get(&server.base).await, CAP))
            .await
            .unwrap();
        assert!(matches!(read, Err(ReadError::TooLarge { .. })), "{read:?}");
    }

    #[tokio::test]
    async fn a_small_declared_length_is_not_trusted() {
        // Says 1 KiB, sends 4 MiB: HTTP/1.1 framing reads only what was
        // declared, so the client gets a short, complete body and stops.
        let server = serve(
            Body::Declared {
                declared: 1024,
                sent: 4 * 1024 * 1024,
            },
            1,
        )
        .await;
        let read = tokio::time::timeout(LIMIT, read_capped(get(&server.base).await, CAP))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read.len(), 1024);
    }

    #[tokio::test]
    async fn a_body_within_the_cap_is_read_whole() {
        let server = serve(Body::Exact(br#"{"ok":true}"#), 1).await;
        let read = read_capped(get(&server.base).await, CAP).await.unwrap();
        assert_eq!(read, br#"{"ok":true}"#);
        assert_eq!(server.finish().await, 11);
    }
}
