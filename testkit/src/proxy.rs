//! A TCP proxy a test can cut, to lose one client's connection without touching the server.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Forwards connections to an upstream port until [`TcpProxy::cut`] is called; after that,
/// open connections are closed and new ones refused, as if the client's network went away.
pub struct TcpProxy {
    port: u16,
    cut: CancellationToken,
}

impl TcpProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream_port` there.
    pub async fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let cut = CancellationToken::new();
        let upstream = SocketAddr::from(([127, 0, 0, 1], upstream_port));
        tokio::spawn(accept_loop(listener, upstream, cut.clone()));
        TcpProxy { port, cut }
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every connection through the proxy and refuses new ones, for good.
    pub fn cut(&self) {
        self.cut.cancel();
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut.cancel();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, cut: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            () = cut.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((mut client, _)) = accepted else { continue };
        let cut = cut.clone();
        tokio::spawn(async move {
            let Ok(mut server) = TcpStream::connect(upstream).await else { return };
            tokio::select! {
                () = cut.cancelled() => {}
                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
            }
        });
    }
}
