//! Floor of Updraft's benchmark: the least an HTTP/1.1 server in Rust can do per request. Every request, whatever
//! its method and path, gets `{"hello":"world"}`; nothing is parsed, authenticated or forwarded.
//!
//! Usage: `hyper-floor <port>` (always on 127.0.0.1).

use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &[u8] = br#"{"hello":"world"}"#;

async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    // Read the request body like a real handler would, so the connection stays reusable.
    req.into_body().collect().await?;
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::args()
        .nth(1)
        .ok_or("usage: hyper-floor <port>")?
        .parse()?;
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        // Same as a typical server: Nagle off so small answers leave at once.
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            // A closed or broken connection is the client's business; the floor just drops it.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}
