//! A real SMTP server in the test process (the `mailin` protocol implementation), that can
//! refuse mail, stop (the port refuses connections) and start again on the same port.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mailin::{Action, Handler, Response, SessionBuilder, response};

/// What every connection of one server shares.
#[derive(Default)]
struct Shared {
    received: Mutex<Vec<String>>,
    refusing: AtomicBool,
    stopping: AtomicBool,
    connections: Mutex<Vec<TcpStream>>,
}

/// One SMTP session's handler: keeps the message being received.
struct Session {
    shared: Arc<Shared>,
    current: Vec<u8>,
}

impl Handler for Session {
    fn rcpt(&mut self, _to: &str) -> Response {
        if self.shared.refusing.load(Ordering::SeqCst) {
            Response::custom(451, "4.3.0 try again later".into())
        } else {
            response::OK
        }
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, _to: &[String]) -> Response {
        self.current.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let message = String::from_utf8_lossy(&std::mem::take(&mut self.current)).into_owned();
        self.shared.received.lock().expect("lock").push(message);
        response::OK
    }
}

/// An SMTP server on 127.0.0.1 that keeps every message it accepts.
pub struct SmtpServer {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl SmtpServer {
    /// Starts on a free port.
    pub fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind an SMTP port");
        let port = listener.local_addr().expect("local address").port();
        let mut server = SmtpServer { port, shared: Arc::default(), acceptor: None };
        server.listen(listener);
        server
    }

    fn listen(&mut self, listener: TcpListener) {
        self.shared.stopping.store(false, Ordering::SeqCst);
        let shared = self.shared.clone();
        self.acceptor = Some(std::thread::spawn(move || {
            for stream in listener.incoming() {
                if shared.stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(clone) = stream.try_clone() {
                    shared.connections.lock().expect("lock").push(clone);
                }
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, Session { shared, current: Vec::new() });
                });
            }
        }));
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message accepted so far, as raw RFC 5322 text.
    pub fn messages(&self) -> Vec<String> {
        self.shared.received.lock().expect("lock").clone()
    }

    /// While `true`, recipients get `451 try again later`.
    pub fn refuse(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Closes every connection and stops listening: clients get "connection refused".
    pub fn stop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port)); // wake the acceptor
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        for connection in self.shared.connections.lock().expect("lock").drain(..) {
            let _ = connection.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same port.
    pub fn restart(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("rebind the SMTP port");
        self.listen(listener);
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs one SMTP session over `stream`.
fn serve(stream: TcpStream, handler: Session) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let peer: IpAddr = stream.peer_addr()?.ip();
    let mut session = SessionBuilder::new("ates-test-smtp").build(peer, handler);
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    session.greeting().write_to(&mut writer)?;
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let reply = session.process(&line);
        match reply.action {
            Action::Reply => reply.write_to(&mut writer)?,
            Action::Close => {
                reply.write_to(&mut writer)?;
                return Ok(());
            }
            Action::UpgradeTls => return Ok(()),
            Action::NoReply => {}
        }
    }
}
