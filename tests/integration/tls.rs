//! chat_server's TLS port with certificates of a CA made per test:
//! chat_client --tls through a conversation, refusals that name the failed
//! CA or name, a certificate rotated under live connections, the plaintext
//! port off, and stalled handshakes dropped.

use std::io::Read;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chatp::client::{Link, Target};
use chatp::protocol::{self, input};
use chatp::tls::Trust;
use crossbeam_channel::Receiver;

use crate::certs::{path_str, Ca, PemDir};
use crate::client::ClientProc;
use crate::ops::{ops_port, sample};
use crate::support::{unique, ServerProc, World, LINE_TIMEOUT, NO_RATE_LIMITS};

/// A protocol client over TLS (the crate's own client link), lines read by
/// a thread so that every wait has a deadline.
struct TlsLines {
    link: Arc<Link>,
    lines: Receiver<Option<String>>,
}

impl TlsLines {
    fn connect(port: u16, ca: &Path) -> Result<TlsLines, String> {
        let c = Self::open(port, ca)?;
        c.expect(protocol::AUTH_REQUEST);
        Ok(c)
    }

    /// A TLS connection, nothing read yet.
    fn open(port: u16, ca: &Path) -> Result<TlsLines, String> {
        let target = Target::with_tls("127.0.0.1", port, Trust::CaFile(ca.to_path_buf()))?;
        let link = target.connect()?;
        let (tx, lines) = crossbeam_channel::unbounded();
        let mut reader = std::io::BufReader::new(link.reader());
        std::thread::spawn(move || loop {
            let mut line = String::new();
            match std::io::BufRead::read_line(&mut reader, &mut line) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(None);
                    return;
                }
                Ok(_) => {
                    let _ = tx.send(Some(line.trim_end_matches('\n').to_string()));
                }
            }
        });
        Ok(TlsLines { link, lines })
    }

    fn send(&self, line: &str) {
        self.link.write_line(line).expect("write over TLS");
    }

    fn line(&self) -> Option<String> {
        self.lines.recv_timeout(LINE_TIMEOUT).expect("a line within the timeout")
    }

    fn expect(&self, want: &str) {
        assert_eq!(self.line().as_deref(), Some(want));
    }

    fn signup(&self, name: &str, password: &str) {
        for l in [input::SIGNUP, name, password] {
            self.send(l);
        }
        self.expect(protocol::SIGNUP_PROMPT);
        self.expect(&protocol::signup_success(name));
        for l in protocol::main_menu() {
            self.expect(&l);
        }
    }
}

/// A server with a certificate for 127.0.0.1 from `ca`, and more settings.
fn tls_server(w: &World, pem: &PemDir, ca: &Ca, extra: &[(&str, &str)]) -> ServerProc {
    let (cert, key) = ca.issue(&["127.0.0.1"]);
    let cert = pem.write("tls.crt", &cert);
    let key = pem.write("tls.key", &key);
    let mut env = vec![("TLS_CERT_FILE", path_str(&cert)), ("TLS_KEY_FILE", path_str(&key)), ("TLS_PORT", "0")];
    env.extend_from_slice(extra);
    w.start_server_with(&env)
}

/// chat_client's stderr and exit code when its connection is refused.
fn refused_client(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chat_client"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run chat_client");
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn chat_client_holds_a_whole_conversation_over_tls() {
    let w = World::new("tls_chat");
    let (pem, ca) = (PemDir::new(), Ca::new("chatp-test-ca"));
    let ca_file = pem.write("ca.pem", &ca.pem());
    let server = tls_server(&w, &pem, &ca, &[NO_RATE_LIMITS]);
    let port = server.tls_port.expect("a TLS port").to_string();
    let args = ["--ca", path_str(&ca_file)];
    let (a, b) = (unique("ann"), unique("bob"));
    let mut ca_client = ClientProc::start_with_host("127.0.0.1", &port, &args);
    ca_client.signup(&a, "pw-a");
    let mut cb = ClientProc::start_with_host("127.0.0.1", &port, &args);
    cb.signup(&b, "pw-b");
    ca_client.type_line("1");
    ca_client.wait_for(&format!("🟢 {b}"));
    ca_client.type_line(&b);
    ca_client.wait_for(&format!("=== Chat with {b} ==="));
    ca_client.type_line("over TLS: hello");
    ca_client.wait_for("✓ Message delivered");
    cb.wait_for(&format!("💬 {a}: over TLS: hello"));
    // A long reply, several TLS records' worth, arrives whole.
    let long = "x".repeat(4000);
    cb.type_line("1");
    cb.type_line(&a);
    cb.wait_for(&format!("=== Chat with {a} ==="));
    cb.type_line(&long);
    cb.wait_for("✓ Message delivered");
    ca_client.wait_for(&format!("💬 {b}: {long}"));
    // Back to the contacts, back to the menu, log out: a clean exit.
    ca_client.type_line("back");
    ca_client.wait_for("=== Contacts ===");
    ca_client.type_line("back");
    ca_client.wait_for("Choose 1-5");
    ca_client.type_line("bye");
    assert_eq!(ca_client.exit_code(), 0);
    let ops = ops_port(&server);
    assert!(sample(ops, "chatp_tls_handshakes_total", &[("result", "ok")]) >= 2.0);
}

#[test]
fn a_wrong_ca_a_wrong_name_or_a_plaintext_port_is_refused_with_a_clear_line() {
    let w = World::new("tls_refuse");
    let (pem, ca) = (PemDir::new(), Ca::new("chatp-test-ca"));
    let other = pem.write("other.pem", &Ca::new("someone-else").pem());
    let ca_file = pem.write("ca.pem", &ca.pem());
    let server = tls_server(&w, &pem, &ca, &[]);
    let tls_port = server.tls_port.unwrap().to_string();

    let (code, err) = refused_client(&["127.0.0.1", &tls_port, "--ca", path_str(&other)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("not signed by the CA in {}", other.display())), "{err}");

    let (code, err) = refused_client(&["127.0.0.1", &tls_port, "--tls"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not signed by a CA this system trusts"), "{err}");

    // The certificate names 127.0.0.1 only.
    let (code, err) = refused_client(&["localhost", &tls_port, "--ca", path_str(&ca_file)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not valid for the name \"localhost\""), "{err}");

    // --tls against the plaintext port: no fallback.
    let (code, err) = refused_client(&["127.0.0.1", &server.port.to_string(), "--ca", path_str(&ca_file)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("did not answer in TLS (is this its plaintext port?)"), "{err}");
    assert!(!err.contains(protocol::AUTH_REQUEST), "{err}");
    assert!(sample(ops_port(&server), "chatp_tls_handshakes_total", &[("result", "failed")]) >= 3.0);
}

#[test]
fn a_rotated_certificate_reaches_new_connections_and_live_ones_stay() {
    let w = World::new("tls_rotate");
    let (pem, ca1, ca2) = (PemDir::new(), Ca::new("ca-one"), Ca::new("ca-two"));
    let (ca1_file, ca2_file) = (pem.write("ca1.pem", &ca1.pem()), pem.write("ca2.pem", &ca2.pem()));
    let server = tls_server(&w, &pem, &ca1, &[("TLS_RELOAD_SECS", "1")]);
    let port = server.tls_port.unwrap();
    let live = TlsLines::connect(port, &ca1_file).unwrap();
    let name = unique("rita");
    live.signup(&name, "pw");
    assert!(TlsLines::connect(port, &ca2_file).is_err(), "ca-two trusted before the rotation");

    let (cert, key) = ca2.issue(&["127.0.0.1"]);
    pem.write("tls.key", &key);
    pem.write("tls.crt", &cert);
    server.wait_log("replaces the previous one");
    let fresh = TlsLines::connect(port, &ca2_file).expect("the new certificate is served");
    let refused = TlsLines::connect(port, &ca1_file).err().expect("the old certificate is gone");
    assert!(refused.contains("not signed by the CA in"), "{refused}");

    // The connection made before the rotation goes on.
    live.send(input::MENU_BROADCAST);
    let opened: Vec<String> =
        std::iter::from_fn(|| live.line()).take_while(|l| l != protocol::CONVERSATION_READY).collect();
    assert!(opened.iter().any(|l| l.contains(protocol::text::BROADCAST_CHANNEL)), "{opened:?}");
    live.send("still here after the rotation");
    assert_eq!(live.line().as_deref(), Some(protocol::broadcast_sent(0, 0).as_str()));

    // A broken pair is refused; the last good certificate stays.
    pem.write("tls.crt", "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
    server.wait_log("TLS certificate not reloaded, the previous one stays in use");
    drop(fresh);
    TlsLines::connect(port, &ca2_file).expect("still served after a bad file");
}

#[test]
fn with_plaintext_off_only_tls_is_served_and_stalled_handshakes_cost_nothing() {
    let w = World::new("tls_only");
    let (pem, ca) = (PemDir::new(), Ca::new("chatp-test-ca"));
    let ca_file = pem.write("ca.pem", &ca.pem());
    let server = tls_server(&w, &pem, &ca, &[("PLAINTEXT", "off"), ("TLS_HANDSHAKE_SECS", "1")]);
    let port = server.tls_port.unwrap();
    assert_eq!(server.port, 0);
    server.wait_log("plaintext port off");
    assert_eq!(server.log_text().matches(" as pod ").count(), 1, "{}", server.log_text());

    // Ten connections that never say hello, and one that sends plaintext.
    let mut stalled: Vec<TcpStream> = (0..10).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    let mut plain = TcpStream::connect(("127.0.0.1", port)).unwrap();
    std::io::Write::write_all(&mut plain, b"LOGIN\n").unwrap();
    // Meanwhile a real client signs up without waiting for them.
    let started = Instant::now();
    let c = TlsLines::connect(port, &ca_file).unwrap();
    c.signup(&unique("tina"), "pw");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    for s in stalled.iter_mut().chain([&mut plain]) {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let begun = Instant::now();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap_or(0);
        assert!(!String::from_utf8_lossy(&buf[..n]).contains(protocol::AUTH_REQUEST));
        // Closed (EOF or reset) rather than kept.
        assert!(s.read(&mut buf).map_or(true, |n| n == 0), "connection still open");
        assert!(begun.elapsed() < Duration::from_secs(5));
    }
    let ops = ops_port(&server);
    assert!(sample(ops, "chatp_tls_handshakes_total", &[("result", "timeout")]) >= 10.0);
    assert_eq!(sample(ops, "chatp_connections", &[("state", "authenticating")]), 0.0);
}

#[test]
fn a_tls_client_at_a_full_server_is_told_inside_tls() {
    let w = World::new("tls_full");
    let (pem, ca) = (PemDir::new(), Ca::new("chatp-test-ca"));
    let ca_file = pem.write("ca.pem", &ca.pem());
    let server = tls_server(&w, &pem, &ca, &[("MAX_CONNECTIONS", "1")]);
    let port = server.tls_port.expect("a TLS port");
    let first = TlsLines::connect(port, &ca_file).expect("the first client gets in");
    for _ in 0..3 {
        let refused = TlsLines::open(port, &ca_file).expect("the handshake completes");
        assert_eq!(refused.line().as_deref(), Some(protocol::error(protocol::text::SERVER_FULL).as_str()));
        assert_eq!(refused.line(), None, "then the server closes");
    }
    // The first client is still served; once it leaves, the slot is free.
    first.signup(&unique("tia"), "pw");
    first.send(input::BYE);
    assert_eq!(first.line(), None);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let c = TlsLines::open(port, &ca_file).expect("handshake");
        if c.line().as_deref() == Some(protocol::AUTH_REQUEST) {
            break;
        }
        assert!(Instant::now() < deadline, "the slot was not given back");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_lone_self_signed_certificate_is_explained_in_words() {
    let w = World::new("tls_selfsigned");
    let pem = PemDir::new();
    // What a newcomer makes first: one self-signed certificate (OpenSSL
    // marks it as a CA), given to the server and to --ca alike.
    let (cert, key) = (pem.dir.join("cert.pem"), pem.dir.join("key.pem"));
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
        .args(["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout"])
        .args([path_str(&key), "-out", path_str(&cert)])
        .output()
        .expect("openssl (Debian's openssl package)");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let server =
        w.start_server_with(&[("TLS_CERT_FILE", path_str(&cert)), ("TLS_KEY_FILE", path_str(&key)), ("TLS_PORT", "0")]);
    let port = server.tls_port.unwrap().to_string();
    let (code, err) = refused_client(&["127.0.0.1", &port, "--ca", path_str(&cert)]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("presents a CA certificate (or a lone self-signed one) as its own"), "{err}");
    assert!(err.contains("docs/tls.md"), "{err}");
    assert!(!err.contains("CaUsedAsEndEntity"), "{err}");
}

#[test]
fn a_bad_certificate_pair_stops_the_start_before_postgresql_or_redis_are_touched() {
    let w = World::new("tls_bad_start");
    let (pem, ca) = (PemDir::new(), Ca::new("chatp-test-ca"));
    let (cert, key) = ca.issue(&["127.0.0.1"]);
    let cert = pem.write("tls.crt", &cert[..cert.len() / 2]);
    let key = pem.write("tls.key", &key);
    let out = w
        .server_command()
        .env("TLS_CERT_FILE", &cert)
        .env("TLS_KEY_FILE", &key)
        .env("TLS_PORT", "0")
        .env("HOSTNAME", "pod-with-a-bad-pair")
        .output()
        .expect("run chat_server");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("cannot serve TLS") && err.contains("cut short"), "{err}");
    // Neither the schema nor presence was touched.
    let users: Option<String> = w.db().query_one("SELECT to_regclass('users')::text", &[]).unwrap().get(0);
    assert_eq!(users, None, "the schema was applied before the pair was checked");
    let pods: Vec<String> = redis::cmd("SMEMBERS").arg(w.keys().pods()).query(&mut w.redis()).unwrap();
    assert!(pods.is_empty(), "joined presence: {pods:?}");
}
