//! Least privilege in PostgreSQL (issue 25): the roles of
//! helm-chart/chat-app/files/roles.sql, created as an operator would (psql,
//! as a superuser), carry chatp: the owner migrates, the app role serves
//! and can do nothing else, the reader only reads. And a chat_server that
//! runs as a superuser says so.

use std::process::Command;

use crate::support::{unique, var, World};

const ROLES_SQL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/helm-chart/chat-app/files/roles.sql");

/// Runs roles.sql on `w`'s database as the test run's superuser; the three
/// role names (password "pw-<name>").
fn bootstrap(w: &World) -> (String, String, String) {
    let (owner, app, reader) = (unique("own_"), unique("app_"), unique("rdr_"));
    let vars = [
        ("db", w.db_name.clone()),
        ("owner", owner.clone()),
        ("owner_password", format!("pw-{owner}")),
        ("app", app.clone()),
        ("app_password", format!("pw-{app}")),
        ("reader", reader.clone()),
        ("reader_password", format!("pw-{reader}")),
    ];
    let mut psql = Command::new("psql");
    psql.args(["-h", &var("DB_HOST"), "-p", &var("DB_PORT"), "-U", &var("DB_SUPERUSER"), "-d", &w.db_name, "-q"])
        .env("PGPASSWORD", var("DB_PASS"))
        .args(["-f", ROLES_SQL]);
    for (k, v) in &vars {
        psql.arg("-v").arg(format!("{k}={v}"));
    }
    let out = psql.output().expect("psql (PostgreSQL's client)");
    assert!(out.status.success(), "roles.sql: {}", String::from_utf8_lossy(&out.stderr));
    (owner, app, reader)
}

/// A connection to `w`'s database as `role`.
fn as_role(w: &World, role: &str) -> postgres::Client {
    postgres::Config::new()
        .host(&var("DB_HOST"))
        .port(var("DB_PORT").parse().unwrap())
        .dbname(&w.db_name)
        .user(role)
        .password(format!("pw-{role}"))
        .connect(postgres::NoTls)
        .unwrap_or_else(|e| panic!("connect as {role}: {e}"))
}

fn refused(c: &mut postgres::Client, sql: &str) -> String {
    match c.batch_execute(sql) {
        Ok(()) => panic!("{sql:?} was allowed"),
        Err(e) => e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string()),
    }
}

#[test]
fn the_app_role_serves_and_can_do_nothing_else_and_the_reader_only_reads() {
    let w = World::new("roles");
    let (owner, app, reader) = bootstrap(&w);
    let server = w.start_server_with(&[
        ("DB_USER", &app),
        ("DB_PASS", &format!("pw-{app}")),
        ("DB_MIGRATION_USER", &owner),
        ("DB_MIGRATION_PASS", &format!("pw-{owner}")),
    ]);
    // chatp works as the app role: sign up, a message stored.
    let (ann, bob) = (unique("ann"), unique("bob"));
    server.connect().signup(&bob, "pw");
    let mut a = server.connect();
    a.signup(&ann, "pw");
    a.open_conversation(&bob);
    a.send("stored by the app role");
    assert_eq!(a.line(), chatp::protocol::sent(false));
    assert!(!server.log_text().contains("is a superuser"), "{}", server.log_text());
    let tables: String = as_role(&w, &owner)
        .query_one("SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname = 'public'", &[])
        .unwrap()
        .get(0);
    assert_eq!(tables, owner, "the owner made the schema");

    // The app role: DML on chatp's tables, nothing else.
    let mut c = as_role(&w, &app);
    let n: i64 = c.query_one("SELECT count(*) FROM messages", &[]).unwrap().get(0);
    assert_eq!(n, 1);
    assert!(refused(&mut c, "DROP TABLE messages").contains("must be owner"));
    assert!(refused(&mut c, "CREATE TABLE mine (x int)").contains("permission denied"));
    assert!(refused(&mut c, "ALTER TABLE users ADD COLUMN x int").contains("must be owner"));
    // Another schema in the same database stays closed to it.
    let mut admin = w.db_as_superuser();
    admin.batch_execute("CREATE SCHEMA payroll; CREATE TABLE payroll.salaries (amount int)").unwrap();
    assert!(refused(&mut c, "SELECT * FROM payroll.salaries").contains("permission denied"));
    // The reader reads, and writes nothing.
    let mut r = as_role(&w, &reader);
    let users: i64 = r.query_one("SELECT count(*) FROM users", &[]).unwrap().get(0);
    assert_eq!(users, 2);
    assert!(refused(&mut r, "INSERT INTO broadcast_messages (sender_username, message_text) VALUES ('x', 'y')")
        .contains("permission denied"));
    assert!(refused(&mut r, "UPDATE users SET password_hash = 'x'").contains("permission denied"));
    assert!(refused(&mut r, "DELETE FROM sessions").contains("permission denied"));
}

#[test]
fn chat_server_warns_when_it_runs_as_a_superuser() {
    let w = World::new("roles_super");
    let server = w.start_server_with(&[("DB_USER", &var("DB_SUPERUSER"))]);
    server.wait_log("is a superuser");
}
