//! TLS to PostgreSQL (`DB_SSLMODE`, `DB_SSLROOTCERT`) and Redis
//! (`REDIS_TLS`, `REDIS_CA_FILE`) on the test run's own instances, which
//! `scripts/services.sh` starts with ssl=on and a TLS port, certificates
//! from its CA (`CHATP_TEST_CA`).

use std::process::Stdio;
use std::time::{Duration, Instant};

use chatp::protocol::{self, input};

use crate::certs::{path_str, Ca, PemDir};
use crate::support::{unique, var, World, NO_RATE_LIMITS};

/// The server's stderr when it cannot start with `env` (it must exit).
fn start_fails(w: &World, env: &[(&str, &str)]) -> String {
    let mut cmd = w.server_command();
    cmd.envs(env.iter().copied()).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chat_server started with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn verified_tls_to_postgresql_and_redis_carries_a_conversation() {
    let w = World::new("store_tls");
    let ca = var("CHATP_TEST_CA");
    let redis_tls_port = var("REDIS_TLS_PORT");
    let server = w.start_server_with(&[
        NO_RATE_LIMITS,
        ("DB_SSLMODE", "verify-full"),
        ("DB_SSLROOTCERT", &ca),
        ("REDIS_PORT", &redis_tls_port),
        ("REDIS_TLS", "on"),
        ("REDIS_CA_FILE", &ca),
    ]);
    let (a, b) = (unique("ann"), unique("bob"));
    let mut ca_conn = server.connect();
    ca_conn.signup(&a, "pw");
    let mut cb = server.connect();
    cb.signup(&b, "pw");
    ca_conn.open_conversation(&b);
    ca_conn.send("sealed all the way");
    ca_conn.expect(&protocol::sent(true));
    cb.expect(&protocol::message(&a, "sealed all the way"));
    // Presence went through the TLS port of the same Redis.
    w.wait_online("both users", Duration::from_secs(5), |u| u.contains(&a) && u.contains(&b));

    // Every connection of this server to PostgreSQL is encrypted.
    let mut db = w.db();
    let row = db
        .query_one(
            "SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.application_name = 'chat_server' AND a.datname = current_database()",
            &[],
        )
        .unwrap();
    let (n, all_ssl): (i64, Option<bool>) = (row.get(0), row.get(1));
    assert!(n >= 2, "{n} connections");
    assert_eq!(all_ssl, Some(true));
    ca_conn.send(input::BACK);
}

#[test]
fn an_untrusted_certificate_or_a_plaintext_client_cannot_reach_storage() {
    let w = World::new("store_tls_refused");
    let pem = PemDir::new();
    let other = pem.write("other.pem", &Ca::new("not-the-services-ca").pem());
    let other = path_str(&other);

    let err = start_fails(&w, &[("DB_SSLMODE", "verify-full"), ("DB_SSLROOTCERT", other)]);
    assert!(err.contains("cannot reach PostgreSQL") && err.contains("UnknownIssuer"), "{err}");
    let redis_tls_port = var("REDIS_TLS_PORT");
    let err = start_fails(&w, &[("REDIS_PORT", &redis_tls_port), ("REDIS_TLS", "on"), ("REDIS_CA_FILE", other)]);
    assert!(err.contains("cannot reach Redis") && err.contains("UnknownIssuer"), "{err}");
    let err = start_fails(&w, &[("REDIS_PORT", &redis_tls_port), ("REDIS_TLS", "off")]);
    assert!(err.contains("cannot reach Redis"), "{err}");
    let err = start_fails(&w, &[("DB_SSLMODE", "verify-full"), ("DB_SSLROOTCERT", "/nonexistent/ca.pem")]);
    assert!(err.contains("cannot read CA file /nonexistent/ca.pem"), "{err}");
}
