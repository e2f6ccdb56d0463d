//! The chart's Redis ACL users (`helm-chart/chat-app/files/redis-users.acl`)
//! on the test run's real Redis: each component works as its own user and
//! is refused outside its rights. The file is filled as the chart fills it
//! (key prefix, SHA-256 of each password) and loaded with `ACL SETUSER`
//! under names unique to the test (the Redis is shared: its `default` user
//! is left alone, and the users are deleted at the end).

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use chatp::autoscaler::report::{self, TickReport};
use chatp::config::RedisConfig;
use chatp::presence::OnlineCounter;
use chatp::protocol::{self, input, text};
use chatp::redis_store::{Keys, RedisConnector};
use sha2::{Digest, Sha256};

use crate::support::{unique, ServerProc, World, NO_RATE_LIMITS};

const ACL_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/helm-chart/chat-app/files/redis-users.acl");

/// The file's users, loaded under unique names; deleted on drop.
struct AclUsers {
    world_redis: crate::support::Services,
    /// File name (`chat`) -> (name in this Redis, password).
    users: HashMap<String, (String, String)>,
    prefix: String,
}

/// `user NAME rule rule (selector rule) ...` -> (NAME, rules), a selector
/// in parentheses kept as one argument, as `ACL SETUSER` wants it.
fn parse_line(line: &str) -> (String, Vec<String>) {
    let mut words = line.split_whitespace();
    assert_eq!(words.next(), Some("user"), "{line}");
    let name = words.next().expect("a user name").to_string();
    let mut rules: Vec<String> = Vec::new();
    let mut open: Option<String> = None;
    for w in words {
        match open.take() {
            Some(mut sel) => {
                sel.push(' ');
                sel.push_str(w);
                if w.ends_with(')') {
                    rules.push(sel);
                } else {
                    open = Some(sel);
                }
            }
            None if w.starts_with('(') && !w.ends_with(')') => open = Some(w.to_string()),
            None => rules.push(w.to_string()),
        }
    }
    assert!(open.is_none(), "unclosed selector in {line}");
    (name, rules)
}

impl AclUsers {
    fn load(w: &World) -> AclUsers {
        let file = std::fs::read_to_string(ACL_FILE).expect("read redis-users.acl");
        let mut conn = w.redis();
        let mut users = HashMap::new();
        let mut seen_default = false;
        for line in file.lines().filter(|l| !l.trim().is_empty()) {
            let (name, _) = parse_line(line);
            if name == "default" {
                // Not applied to the shared Redis; the chart's Redis gets it.
                let (_, rules) = parse_line(line);
                assert!(rules.contains(&"off".to_string()), "the default user is not off: {line}");
                seen_default = true;
                continue;
            }
            let password = hex::encode(Sha256::digest(format!("{}{:?}", unique("pw"), std::time::SystemTime::now())));
            let placeholder = format!("@{}_PASSWORD_SHA256@", name.to_uppercase());
            let filled = line
                .replace("@PREFIX@", &w.prefix)
                .replace(&placeholder, &hex::encode(Sha256::digest(password.as_bytes())));
            let left = filled.split('@').skip(1).any(|w| w.starts_with(|c: char| c.is_ascii_uppercase()));
            assert!(!left, "a placeholder left in {filled}");
            let (_, rules) = parse_line(&filled);
            let real = unique(&format!("{name}-"));
            let mut cmd = redis::cmd("ACL");
            cmd.arg("SETUSER").arg(&real);
            for r in &rules {
                cmd.arg(r);
            }
            let () = cmd.query(&mut conn).unwrap_or_else(|e| panic!("ACL SETUSER {real} {rules:?}: {e}"));
            users.insert(name, (real, password));
        }
        assert!(seen_default, "redis-users.acl does not turn the default user off");
        for role in ["chat", "autoscaler", "dashboard", "admin"] {
            assert!(users.contains_key(role), "redis-users.acl has no {role} user");
        }
        AclUsers { world_redis: w.services.clone(), users, prefix: w.prefix.clone() }
    }

    /// REDIS_USERNAME and REDIS_PASSWORD of `role`.
    fn env(&self, role: &str) -> [(&str, &str); 2] {
        let (name, pw) = &self.users[role];
        [("REDIS_USERNAME", name.as_str()), ("REDIS_PASSWORD", pw.as_str())]
    }

    fn config(&self, role: &str) -> RedisConfig {
        let (name, pw) = &self.users[role];
        RedisConfig {
            host: self.world_redis.redis_host.clone(),
            port: self.world_redis.redis_port,
            username: Some(name.clone()),
            password: Some(pw.clone()),
            key_prefix: self.prefix.clone(),
            tls: false,
            ca_file: None,
            sentinel: None,
        }
    }

    /// A plain connection as `role`, through chatp's own connector.
    fn conn(&self, role: &str) -> redis::Connection {
        RedisConnector::new(&self.config(role)).unwrap().connect().unwrap_or_else(|e| panic!("connect as {role}: {e}"))
    }

    fn counter(&self, role: &str) -> OnlineCounter {
        OnlineCounter::new(RedisConnector::new(&self.config(role)).unwrap(), Keys::new(&self.prefix))
    }
}

impl Drop for AclUsers {
    fn drop(&mut self) {
        if let Ok(mut c) = std::panic::catch_unwind(|| crate::support::redis_conn(&self.world_redis)) {
            for (name, _) in self.users.values() {
                let _: redis::RedisResult<i64> = redis::cmd("ACL").arg("DELUSER").arg(name).query(&mut c);
            }
        }
    }
}

/// The command was refused by the ACL (NOPERM), not for another reason.
#[track_caller]
fn refused<T: std::fmt::Debug>(what: &str, r: redis::RedisResult<T>) {
    match r {
        Ok(v) => panic!("{what}: allowed ({v:?}), expected NOPERM"),
        Err(e) => assert!(
            e.code() == Some("NOPERM")
                || e.to_string().contains("can't run this command")
                || e.to_string().contains("can't access"),
            "{what}: refused for another reason: {e}"
        ),
    }
}

/// chat_admin `args` as the `admin` Redis user; its JSON output lines.
fn chat_admin(w: &World, users: &AclUsers, args: &[&str], stdin: &str) -> Vec<serde_json::Value> {
    let mut child = w
        .command(env!("CARGO_BIN_EXE_chat_admin"))
        .envs(users.env("admin"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chat_admin");
    child.stdin.as_mut().unwrap().write_all(stdin.as_bytes()).unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "chat_admin {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn chat_pod(w: &World, users: &AclUsers) -> ServerProc {
    let [u, p] = users.env("chat");
    w.start_server_with(&[u, p, NO_RATE_LIMITS, ("PRESENCE_TTL_SECS", "3")])
}

#[test]
fn chat_pods_and_chat_admin_work_as_their_own_acl_users() {
    let w = World::new("acl_chat");
    let users = AclUsers::load(&w);
    let (p1, p2) = (chat_pod(&w, &users), chat_pod(&w, &users));
    let (a, b) = (unique("a"), unique("b"));
    let mut cb = p2.connect();
    cb.signup(&b, "pw");
    let mut ca = p1.connect();
    ca.signup(&a, "pw");

    // A conversation across the pods, both ways (presence scripts, the
    // route script, pod channels).
    assert!(ca.open_conversation(&b).is_empty());
    assert!(cb.open_conversation(&a).is_empty());
    ca.send("a->b over the chat user");
    ca.expect(&protocol::sent(true));
    cb.expect(&protocol::message(&a, "a->b over the chat user"));
    cb.send("b->a");
    cb.expect(&protocol::sent(true));
    ca.expect(&protocol::message(&b, "b->a"));
    ca.send(input::BACK);
    ca.lines_until(protocol::CONTACT_LIST_END);
    ca.send(input::BACK);
    ca.expect_menu();

    // Broadcast: SMEMBERS online_users + PUBLISH in one pipeline.
    ca.open_broadcast();
    ca.send("to all");
    ca.expect(&protocol::broadcast_sent(1, 1));

    // chat_admin, as the admin user, ends b's session on the other pod.
    let out = chat_admin(&w, &users, &["disable", &b], "");
    assert_eq!(out[0]["pods_told"], 2, "{out:?}");
    // b is in the conversation with a broadcast line queued before the end.
    let ended = protocol::error(text::ENDED_DISABLED);
    cb.stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    loop {
        let line = cb.next_line().expect("b's session ended without the reason");
        if line == ended {
            break;
        }
        assert!(line.starts_with("BROADCAST:"), "unexpected line {line:?}");
    }
    cb.expect_closed();
    w.wait_online("b offline", Duration::from_secs(5), |u| !u.contains(&b));
    assert!(!p1.log_text().contains("NOPERM") && !p2.log_text().contains("NOPERM"), "{}", p1.log_text());
}

#[test]
fn autoscaler_and_dashboard_users_read_presence_and_nothing_else() {
    let w = World::new("acl_readers");
    let users = AclUsers::load(&w);
    let pod = chat_pod(&w, &users);
    let c = unique("c");
    let mut cc = pod.connect();
    cc.signup(&c, "pw");
    w.wait_online("c online", Duration::from_secs(5), |u| u.contains(&c));
    let keys = Keys::new(&w.prefix);

    for role in ["autoscaler", "dashboard"] {
        // They read presence, with the same scripts as the binaries.
        let mut counter = users.counter(role);
        assert_eq!(counter.count().unwrap_or_else(|e| panic!("{role} counts: {e}")), 1, "{role}");
        let pods = counter.sessions_per_pod().unwrap_or_else(|e| panic!("{role} reads pods: {e}"));
        assert_eq!(pods, vec![(pod.pod_id.clone(), 1)], "{role}");

        // They cannot speak on the chat bus nor change presence.
        let mut conn = users.conn(role);
        let line = format!("MESSAGE:ceo:please wire 10k ({role})");
        refused(
            &format!("{role} PUBLISH to a pod"),
            redis::cmd("PUBLISH").arg(keys.pod_channel(&pod.pod_id)).arg(&line).query::<i64>(&mut conn),
        );
        refused(
            &format!("{role} PUBLISH broadcast"),
            redis::cmd("PUBLISH").arg(keys.broadcast_channel()).arg("x").query::<i64>(&mut conn),
        );
        refused(
            &format!("{role} PUBLISH admin"),
            redis::cmd("PUBLISH").arg(keys.admin_channel()).arg("x").query::<i64>(&mut conn),
        );
        refused(
            &format!("{role} SET a presence key"),
            redis::cmd("SET").arg(keys.pod_alive("ghost")).arg("1").query::<()>(&mut conn),
        );
        refused(
            &format!("{role} SADD online_users"),
            redis::cmd("SADD").arg(keys.online_users()).arg("mallory").query::<i64>(&mut conn),
        );
        // Nor through a script of their own (commands in scripts are checked too).
        refused(
            &format!("{role} SADD from a script"),
            redis::cmd("EVAL")
                .arg("return redis.call('SADD', KEYS[1], 'mallory')")
                .arg(1)
                .arg(keys.online_users())
                .query::<i64>(&mut conn),
        );
        refused(
            &format!("{role} PUBLISH from a script"),
            redis::cmd("EVAL")
                .arg("return redis.call('PUBLISH', ARGV[1], ARGV[2])")
                .arg(0)
                .arg(keys.pod_channel(&pod.pod_id))
                .arg(&line)
                .query::<i64>(&mut conn),
        );
        refused(&format!("{role} FLUSHALL"), redis::cmd("FLUSHALL").query::<()>(&mut conn));
    }

    // The autoscaler writes its reports; the dashboard reads them and
    // cannot write them.
    let tick = TickReport {
        at: 1,
        ok: true,
        users: Some(1),
        current: Some(1),
        desired: Some(1),
        target: None,
        action: "none".into(),
        line: "acl test".into(),
    };
    report::write(&mut users.conn("autoscaler"), &keys, &tick, 30).expect("the autoscaler writes its report");
    let (last, _) = report::read(&mut users.conn("dashboard"), &keys).expect("the dashboard reads the report");
    assert_eq!(last, Some(tick.clone()));
    refused("dashboard writes a report", report::write(&mut users.conn("dashboard"), &keys, &tick, 30));
    // The autoscaler's write rights stop at its own keys.
    refused(
        "autoscaler LPUSH outside autoscaler:*",
        redis::cmd("LPUSH").arg(keys.online_users()).arg("x").query::<i64>(&mut users.conn("autoscaler")),
    );

    // Nothing reached c, and presence is as it was.
    cc.expect_silence(Duration::from_millis(300));
    assert_eq!(w.online_users(), vec![c.clone()]);
}

#[test]
fn admin_user_publishes_the_admin_channel_only_and_chat_user_stays_in_its_prefix() {
    let w = World::new("acl_admin");
    let users = AclUsers::load(&w);
    let keys = Keys::new(&w.prefix);
    let mut admin = users.conn("admin");
    let _: i64 = redis::cmd("PUBLISH").arg(keys.admin_channel()).arg("x").query(&mut admin).expect("admin PUBLISH");
    refused(
        "admin PUBLISH to a pod",
        redis::cmd("PUBLISH").arg(keys.pod_channel("p")).arg("x").query::<i64>(&mut admin),
    );
    refused(
        "admin SMEMBERS online_users",
        redis::cmd("SMEMBERS").arg(keys.online_users()).query::<Vec<String>>(&mut admin),
    );
    refused("admin GET", redis::cmd("GET").arg(keys.autoscaler_last()).query::<Option<String>>(&mut admin));
    refused("admin EVAL", redis::cmd("EVAL").arg("return 1").arg(0).query::<i64>(&mut admin));

    // The chat user: all of its prefix, nothing of another deployment's.
    let other = Keys::new(&unique("other-deployment:"));
    let mut chat = users.conn("chat");
    let _: () = redis::cmd("SET").arg(format!("{}x", w.prefix)).arg("1").query(&mut chat).expect("chat SET in prefix");
    refused(
        "chat GET outside its prefix",
        redis::cmd("GET").arg(other.autoscaler_last()).query::<Option<String>>(&mut chat),
    );
    refused(
        "chat SADD outside its prefix",
        redis::cmd("SADD").arg(other.online_users()).arg("x").query::<i64>(&mut chat),
    );
    refused(
        "chat PUBLISH outside its prefix",
        redis::cmd("PUBLISH").arg(other.pod_channel("p")).arg("x").query::<i64>(&mut chat),
    );
    refused(
        "chat script touching another prefix",
        redis::cmd("EVAL")
            .arg("return redis.call('SMEMBERS', ARGV[1])")
            .arg(0)
            .arg(other.online_users())
            .query::<Vec<String>>(&mut chat),
    );
    refused("chat KEYS", redis::cmd("KEYS").arg("*").query::<Vec<String>>(&mut chat));
    refused("chat CONFIG", redis::cmd("CONFIG").arg("GET").arg("*").query::<Vec<String>>(&mut chat));
    refused("chat ACL", redis::cmd("ACL").arg("LIST").query::<Vec<String>>(&mut chat));

    // The probe user answers PING and nothing else.
    if users.users.contains_key("probe") {
        let mut probe = users.conn("probe");
        let _: String = redis::cmd("PING").query(&mut probe).expect("probe PING");
        refused("probe GET", redis::cmd("GET").arg(format!("{}x", w.prefix)).query::<Option<String>>(&mut probe));
    }
}
