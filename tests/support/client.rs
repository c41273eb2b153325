//! A minimal blocking SMTP client for injecting many messages and seeing exactly which ones
//! were acknowledged (250 after the final dot).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub struct Client {
    out: TcpStream,
    input: BufReader<TcpStream>,
}

impl Client {
    /// Connects, reads the banner and says EHLO.
    pub fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let s = TcpStream::connect(addr)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut c = Client {
            out: s.try_clone()?,
            input: BufReader::new(s),
        };
        c.expect(220)?;
        c.command("EHLO client.test", 250)?;
        Ok(c)
    }

    /// One transaction; Ok(()) only when the final reply was 250.
    pub fn send(&mut self, from: &str, to: &str, message: &str) -> std::io::Result<()> {
        self.command(&format!("MAIL FROM:<{from}>"), 250)?;
        self.command(&format!("RCPT TO:<{to}>"), 250)?;
        self.command("DATA", 354)?;
        let mut data = String::new();
        for line in message.split_inclusive("\r\n") {
            if line.starts_with('.') {
                data.push('.');
            }
            data.push_str(line);
        }
        if !data.ends_with("\r\n") {
            data.push_str("\r\n");
        }
        data.push_str(".\r\n");
        self.out.write_all(data.as_bytes())?;
        self.expect(250)
    }

    pub fn quit(mut self) {
        let _ = self.command("QUIT", 221);
    }

    fn command(&mut self, cmd: &str, code: u16) -> std::io::Result<()> {
        self.out.write_all(format!("{cmd}\r\n").as_bytes())?;
        self.expect(code)
    }

    /// Reads one (possibly multi-line) reply and checks its code.
    fn expect(&mut self, code: u16) -> std::io::Result<()> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.input.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        if line.starts_with(&code.to_string()) {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "expected {code}, got {}",
                line.trim_end()
            )))
        }
    }
}
