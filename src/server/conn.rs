//! Connections: accept, TLS, HTTP/1.1, and the limits that keep slow or idle clients from
//! taking the server away from Prometheus and the intake.
//!
//! Each connection is in one phase at a time, and a watchdog closes it when the phase lasts too
//! long:
//!
//! | phase | from | limit |
//! |---|---|---|
//! | handshake | accept (TLS only) | `--web.read-header-timeout` |
//! | head | accept, or the first byte of a next request | `--web.read-header-timeout` |
//! | idle | a response fully handed over | `--web.idle-timeout` |
//! | busy | a complete request head | the route's own (`--intake.read-timeout`, 30 s) |
//! | writing | the route's response | `--web.write-timeout` |
//!
//! A new connection starts in *head*: one that never sends a byte is gone after the header
//! timeout, not the idle timeout. At `--web.max-connections` the connection that has waited
//! longest without a request in progress (handshake, head or idle) is closed to make room;
//! only when every connection is busy is the new one refused. At shutdown, connections get
//! `--web.shutdown-timeout` to finish their request, then they are closed: a stalled client
//! cannot hold up SIGTERM.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::Service;

use super::reload::WebConfigHandle;
use super::{ConnDrop, HttpObserver, LogLimiter};

/// Connection limits (the `web.*` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeOptions {
    pub max_connections: usize,
    pub read_header_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub shutdown_timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions::from(&crate::config::WebConfig::default())
    }
}

impl From<&crate::config::WebConfig> for ServeOptions {
    fn from(c: &crate::config::WebConfig) -> Self {
        ServeOptions {
            max_connections: c.max_connections,
            read_header_timeout: c.read_header_timeout.get(),
            idle_timeout: c.idle_timeout.get(),
            write_timeout: c.write_timeout.get(),
            shutdown_timeout: c.shutdown_timeout.get(),
        }
    }
}

/// What the routes may know about the connection a request came on (a request extension).
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// A client certificate was presented and verified against the client CA.
    pub client_cert_verified: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Handshake,
    Head,
    Idle,
    Busy,
    Writing,
    /// Chosen for eviction: never chosen twice.
    Closing,
}

/// One connection's phase, shared by its IO, its service and its watchdog.
#[derive(Debug)]
struct ConnState {
    phase: Mutex<(Phase, Instant)>,
    changed: Notify,
    kill: Notify,
}

impl ConnState {
    fn new(phase: Phase) -> ConnState {
        ConnState {
            phase: Mutex::new((phase, Instant::now())),
            changed: Notify::new(),
            kill: Notify::new(),
        }
    }

    fn get(&self) -> (Phase, Instant) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn enter(&self, phase: Phase) {
        let mut p = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if p.0 != phase && p.0 != Phase::Closing {
            *p = (phase, Instant::now());
            drop(p);
            self.changed.notify_one();
        }
    }

    /// Idle → head when a byte of a next request arrives.
    fn bytes_read(&self) {
        let mut p = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if p.0 == Phase::Idle {
            *p = (Phase::Head, Instant::now());
            drop(p);
            self.changed.notify_one();
        }
    }

    /// When the current phase runs out, and what closing then is counted as.
    fn deadline(&self, o: &ServeOptions) -> Option<(Instant, ConnDrop)> {
        let (phase, since) = self.get();
        match phase {
            Phase::Handshake => {
                Some((since + o.read_header_timeout, ConnDrop::TlsHandshakeTimeout))
            }
            Phase::Head => Some((since + o.read_header_timeout, ConnDrop::HeaderTimeout)),
            Phase::Idle => Some((since + o.idle_timeout, ConnDrop::IdleTimeout)),
            Phase::Writing => Some((since + o.write_timeout, ConnDrop::WriteTimeout)),
            Phase::Busy | Phase::Closing => None,
        }
    }
}

/// The open connections, for the limit and eviction.
#[derive(Debug, Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<ConnState>>>,
    next: AtomicU64,
}

impl Registry {
    fn len(&self) -> usize {
        self.conns.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn register(&self, state: Arc<ConnState>) -> u64 {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, state);
        id
    }

    fn remove(&self, id: u64) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Signals the connection that has waited longest without a request in progress to close;
    /// false when every connection is busy.
    fn evict_longest_waiting(&self) -> bool {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        let victim = conns
            .values()
            .filter_map(|c| {
                let (phase, since) = c.get();
                matches!(phase, Phase::Handshake | Phase::Head | Phase::Idle).then_some((since, c))
            })
            .min_by_key(|(since, _)| *since)
            .map(|(_, c)| c.clone());
        drop(conns);
        match victim {
            Some(c) => {
                c.phase.lock().unwrap_or_else(|e| e.into_inner()).0 = Phase::Closing;
                c.kill.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Everything a connection task needs.
struct Context_ {
    router: Router,
    web: WebConfigHandle,
    tls: bool,
    opts: ServeOptions,
    observer: Arc<dyn HttpObserver>,
    registry: Registry,
    logs: LogLimiter,
}

/// Serves `router` on `listener` until `shutdown` resolves; then in-flight requests get
/// `opts.shutdown_timeout` to finish. TLS is on when the web config in force at start has it
/// (a reload can change certificates and client authentication, not switch TLS on or off).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    web: WebConfigHandle,
    opts: ServeOptions,
    observer: Arc<dyn HttpObserver>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = web.current().config.tls.is_some();
    let cx = Arc::new(Context_ {
        router,
        web,
        tls,
        opts,
        observer,
        registry: Registry::default(),
        logs: LogLimiter::default(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(error) => {
                        // Out of file descriptors and the like: say so (rarely), and do not
                        // spin on an error that repeats at once.
                        cx.logs.log(2, |suppressed| {
                            tracing::warn!(%error, suppressed, "accepting a connection failed");
                        });
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if cx.registry.len() >= cx.opts.max_connections {
                    if cx.registry.evict_longest_waiting() {
                        cx.observer.connection_dropped(ConnDrop::Evicted);
                    } else {
                        cx.observer.connection_dropped(ConnDrop::Refused);
                        drop(stream);
                        continue;
                    }
                }
                let _ = stream.set_nodelay(true);
                // Registered here, not in the task: the next accept must see it in the count.
                let state = Arc::new(ConnState::new(if cx.tls {
                    Phase::Handshake
                } else {
                    Phase::Head
                }));
                let id = cx.registry.register(state.clone());
                cx.observer.connection_opened();
                let guard = Guard { cx: cx.clone(), id };
                tasks.spawn(connection(cx.clone(), stream, peer, state, guard, stop_rx.clone()));
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Unregisters the connection and updates the gauge however the task ends.
struct Guard {
    cx: Arc<Context_>,
    id: u64,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.cx.registry.remove(self.id);
        self.cx.observer.connection_closed();
    }
}

async fn connection(
    cx: Arc<Context_>,
    stream: TcpStream,
    peer: SocketAddr,
    state: Arc<ConnState>,
    _guard: Guard,
    mut stop: watch::Receiver<bool>,
) {
    if !cx.tls {
        let info = ConnInfo {
            peer,
            client_cert_verified: false,
        };
        return serve_http(&cx, stream, info, state, stop).await;
    }
    let generation = cx.web.current();
    let Some(tls) = generation.config.tls.clone() else {
        return;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config.clone());
    let handshake = tokio::select! {
        r = tokio::time::timeout(cx.opts.read_header_timeout, acceptor.accept(stream)) => r,
        _ = state.kill.notified() => return,
        _ = stop.changed() => return,
    };
    let stream = match handshake {
        Err(_) => {
            cx.observer
                .connection_dropped(ConnDrop::TlsHandshakeTimeout);
            return;
        }
        Ok(Err(error)) => {
            cx.observer.connection_dropped(ConnDrop::TlsHandshakeError);
            cx.logs.log(3, |suppressed| {
                tracing::info!(%peer, %error, suppressed, "TLS handshake failed");
            });
            return;
        }
        Ok(Ok(s)) => s,
    };
    let certs = stream.get_ref().1.peer_certificates();
    if !tls.client_allowed(certs) {
        cx.observer.connection_dropped(ConnDrop::ClientNotAllowed);
        cx.logs.log(4, |suppressed| {
            tracing::info!(%peer, suppressed, "client certificate without an allowed SAN");
        });
        return;
    }
    let info = ConnInfo {
        peer,
        client_cert_verified: tls.client_auth.verifies() && certs.is_some_and(|c| !c.is_empty()),
    };
    state.enter(Phase::Head);
    serve_http(&cx, stream, info, state, stop).await;
}

async fn serve_http<I>(
    cx: &Arc<Context_>,
    io: I,
    info: ConnInfo,
    state: Arc<ConnState>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(Watched {
        inner: io,
        state: state.clone(),
    });
    let router = cx.router.clone();
    let st = state.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        st.enter(Phase::Busy);
        req.extensions_mut().insert(info.clone());
        let mut router = router.clone();
        let st = st.clone();
        async move {
            let response = match router.call(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            st.enter(Phase::Writing);
            Ok::<_, Infallible>(response.map(|body| Tracked {
                inner: body,
                state: st,
                done: false,
            }))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        // The watchdog below enforces the header timeout, starting at the first byte of a
        // request rather than hyper's "since the last response".
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut shutdown_at: Option<Instant> = None;
    loop {
        let deadline = match shutdown_at {
            Some(at) => Some((at, ConnDrop::Shutdown)),
            None => state.deadline(&cx.opts),
        };
        let sleep = async {
            match deadline {
                Some((at, _)) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(error) = r {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            _ = sleep => {
                // The phase may have moved on since the deadline was taken.
                let current = match shutdown_at {
                    Some(at) => Some((at, ConnDrop::Shutdown)),
                    None => state.deadline(&cx.opts),
                };
                if let Some((at, why)) = current {
                    if at <= Instant::now() {
                        cx.observer.connection_dropped(why);
                        return;
                    }
                }
            }
            _ = state.changed.notified() => {}
            _ = state.kill.notified() => return,
            _ = stop.changed(), if shutdown_at.is_none() => {
                // Idle connections close at once; a request in progress may finish.
                conn.as_mut().graceful_shutdown();
                shutdown_at = Some(Instant::now() + cx.opts.shutdown_timeout);
            }
        }
    }
}

/// The connection's IO, noticing the first byte of a next request.
struct Watched<I> {
    inner: I,
    state: Arc<ConnState>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.state.bytes_read();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A response body that puts the connection back to idle once it has been handed over.
struct Tracked {
    inner: Body,
    state: Arc<ConnState>,
    done: bool,
}

impl Tracked {
    fn finish(&mut self) {
        if !self.done {
            self.done = true;
            self.state.enter(Phase::Idle);
        }
    }
}

impl hyper::body::Body for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.finish();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.finish();
    }
}
