//! A TCP forwarder on 127.0.0.1 that a test can stop and start again on the same port: a
//! broker that advertises the proxy's port becomes unreachable for everyone dialing it while
//! the broker itself keeps running (a one-way failure).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Forwards every connection to its port to `target` until stopped or dropped.
pub struct TcpProxy {
    port: u16,
    target: SocketAddr,
    running: Option<Running>,
}

struct Running {
    stopping: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: JoinHandle<()>,
}

impl TcpProxy {
    /// A proxy on a free port.
    pub fn start(target: SocketAddr) -> TcpProxy {
        let mut proxy = TcpProxy {
            port: 0,
            target,
            running: None,
        };
        proxy.listen(0);
        proxy
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes the listener and every forwarded connection: dialing the port is refused.
    pub fn stop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        running.stopping.store(true, Ordering::SeqCst);
        // Wake the blocked accept.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        let _ = running.acceptor.join();
        let connections = running.connections.lock().expect("connections lock");
        for stream in connections.iter() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Listens again on the same port.
    pub fn resume(&mut self) {
        assert!(self.running.is_none(), "the proxy is running");
        self.listen(self.port);
    }

    fn listen(&mut self, port: u16) {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the proxy port");
        self.port = listener.local_addr().expect("proxy address").port();
        let stopping = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let target = self.target;
        let acceptor = {
            let stopping = stopping.clone();
            let connections = connections.clone();
            std::thread::spawn(move || accept_loop(&listener, target, &stopping, &connections))
        };
        self.running = Some(Running {
            stopping,
            connections,
            acceptor,
        });
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(
    listener: &TcpListener,
    target: SocketAddr,
    stopping: &AtomicBool,
    connections: &Mutex<Vec<TcpStream>>,
) {
    for client in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let Ok(server) = TcpStream::connect(target) else {
            continue;
        };
        let (Ok(client_copy), Ok(server_copy)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        {
            let mut open = connections.lock().expect("connections lock");
            for stream in [&client, &server] {
                if let Ok(copy) = stream.try_clone() {
                    open.push(copy);
                }
            }
        }
        std::thread::spawn(move || pump(client, server));
        std::thread::spawn(move || pump(server_copy, client_copy));
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => {
                if to.write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
}
