//! Loopback TCP ceiling: one connection on 127.0.0.1 pumping 1 MiB writes for a fixed time,
//! the most one client connection could ever move on this machine.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::args::Args;

const CHUNK_BYTES: usize = 1 << 20;

pub fn run(args: &Args) -> Result<String, String> {
    let seconds: f64 = args.number_or("seconds", 3.0)?;
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let reader = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut stream, _) = listener.accept()?;
        let mut buffer = vec![0u8; CHUNK_BYTES];
        let mut total: u64 = 0;
        loop {
            let read = stream.read(&mut buffer)?;
            if read == 0 {
                return Ok(total);
            }
            total += read as u64;
        }
    });
    let mut stream = TcpStream::connect(address).map_err(|e| e.to_string())?;
    let chunk = vec![7u8; CHUNK_BYTES];
    let started = Instant::now();
    let duration = Duration::from_secs_f64(seconds);
    while started.elapsed() < duration {
        stream.write_all(&chunk).map_err(|e| e.to_string())?;
    }
    drop(stream);
    let total = reader
        .join()
        .map_err(|_| "reader thread panicked".to_string())?
        .map_err(|e| e.to_string())?;
    let elapsed = started.elapsed().as_secs_f64();
    Ok(format!(
        "{{\"bytes\":{total},\"seconds\":{elapsed:.3},\"mb_per_s\":{:.1}}}",
        total as f64 / elapsed / 1e6
    ))
}
