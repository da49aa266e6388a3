//! Floors of Updraft's benchmark.
//!
//! `hyper-floor <port>`: the least an HTTP/1.1 server in Rust can do per request. Every request, whatever its method
//! and path, gets `{"hello":"world"}`; nothing is parsed, authenticated or forwarded.
//!
//! `hyper-floor <port> --relay <upstream port>`: the least a platform that runs the function in a process of its own
//! can do. Each client connection gets one kept-alive connection to the upstream (a `hyper-floor <upstream port>`);
//! each request's body is posted there and the upstream's body is the answer. No routing, authentication, queueing
//! or Runtime API: one more process hop than the plain floor, nothing else.
//!
//! Both listen on 127.0.0.1 only.

use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

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

type Upstream = Arc<Mutex<hyper::client::conn::http1::SendRequest<Full<Bytes>>>>;

async fn relay(up: Upstream, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let body = req.into_body().collect().await?.to_bytes();
    let forwarded = Request::post("/")
        .header(hyper::header::HOST, "127.0.0.1")
        .body(Full::new(body))
        .expect("a fixed request is valid");
    // One request at a time per client connection, so the lock is never contended.
    let answer = up.lock().await.send_request(forwarded).await?;
    let body = answer.into_body().collect().await?.to_bytes();
    let mut resp = Response::new(Full::new(body));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

async fn connect_upstream(port: u16) -> Result<Upstream, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(Arc::new(Mutex::new(sender)))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: hyper-floor <port> [--relay <upstream port>]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = args.first().ok_or(usage)?.parse()?;
    let upstream: Option<u16> = match args.get(1).map(String::as_str) {
        None => None,
        Some("--relay") => Some(args.get(2).ok_or(usage)?.parse()?),
        Some(_) => return Err(usage.into()),
    };
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        // Same as a typical server: Nagle off so small answers leave at once.
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            // A closed or broken connection is the client's business; the floor just drops it.
            let io = TokioIo::new(stream);
            match upstream {
                None => {
                    let _ = http1::Builder::new().serve_connection(io, service_fn(hello)).await;
                }
                Some(up_port) => {
                    let Ok(up) = connect_upstream(up_port).await else {
                        return;
                    };
                    let svc = service_fn(move |req| relay(up.clone(), req));
                    let _ = http1::Builder::new().serve_connection(io, svc).await;
                }
            }
        });
    }
}
