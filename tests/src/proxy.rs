//! A TCP proxy between a test and its database server that can cut a connection at a chosen
//! moment: after the client sent a statement, before the server's answer comes back. What
//! the server did then stays on the server, and the client is left not knowing it, as when a
//! network drops a connection while a COMMIT is under way.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// When to cut: once a client packet holds `needle`, forward it and `then` more packets of
/// the client's, and cut right after the last.
#[derive(Debug, Clone)]
struct Trigger {
    needle: Vec<u8>,
    then: usize,
}

#[derive(Debug, Default)]
struct State {
    armed: Option<Trigger>,
    cuts: usize,
}

/// A running proxy; dropped, it stops accepting (connections already made run on until
/// either side closes).
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    _stop: watch::Sender<()>,
}

impl Proxy {
    /// A proxy on a free local port forwarding to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let state = Arc::new(Mutex::new(State::default()));
        let (stop, mut stopped) = watch::channel(());
        let upstream = upstream.to_owned();
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => return,
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { return };
                        let Ok(server) = TcpStream::connect(&upstream).await else { continue };
                        tokio::spawn(pipe(client, server, shared.clone()));
                    }
                }
            }
        });
        Proxy {
            addr,
            state,
            _stop: stop,
        }
    }

    /// `url` (of the server this proxies) rewritten to go through the proxy.
    pub fn url(&self, url: &str) -> String {
        let start = url
            .find('@')
            .map_or_else(|| url.find("://").map_or(0, |i| i + 3), |i| i + 1);
        let end = url[start..].find('/').map_or(url.len(), |i| start + i);
        format!("{}{}{}", &url[..start], self.addr, &url[end..])
    }

    /// Cuts the next connection whose client sends a packet holding `needle`, right after
    /// that packet and `then` more of the client's reach the server: the server acts on them,
    /// the client never hears back.
    pub fn cut_after(&self, needle: &str, then: usize) {
        let mut state = self.state.lock().expect("proxy state");
        state.armed = Some(Trigger {
            needle: needle.as_bytes().to_vec(),
            then,
        });
    }

    /// How many connections were cut so far.
    pub fn cuts(&self) -> usize {
        self.state.lock().expect("proxy state").cuts
    }
}

/// `host:port` of a server URL.
pub fn host_port(url: &str) -> String {
    let start = url
        .find('@')
        .map_or_else(|| url.find("://").map_or(0, |i| i + 3), |i| i + 1);
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    url[start..end].to_owned()
}

async fn pipe(client: TcpStream, server: TcpStream, state: Arc<Mutex<State>>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let (cut, mut cut_seen) = watch::channel(false);
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        // Packets still to forward before the cut, once the needle was seen.
        let mut countdown: Option<usize> = None;
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if countdown.is_none() {
                let mut st = state.lock().expect("proxy state");
                let hit = st
                    .armed
                    .as_ref()
                    .is_some_and(|t| buf[..n].windows(t.needle.len()).any(|w| w == t.needle));
                if hit {
                    countdown = st.armed.take().map(|t| t.then);
                }
            }
            match countdown {
                Some(0) => {
                    // The server's answers stop reaching the client here; the packet goes on,
                    // and the server gets time to act on it before the connection goes.
                    let _ = cut.send(true);
                    let _ = server_write.write_all(&buf[..n]).await;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    state.lock().expect("proxy state").cuts += 1;
                    return;
                }
                Some(left) => countdown = Some(left - 1),
                None => {}
            }
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // After the cut, the server's answers are read and dropped until the client's side has
    // finished (its last packet forwarded, the server given time).
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if *cut_seen.borrow_and_update() {
                continue;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Either side ending ends both: the sockets close when this returns.
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}
