//! `chat_admin`'s command line.

use super::Failure;

pub const USAGE: &str = "\
usage: chat_admin <command> [arguments]

Manages chatp accounts in the database chat_server uses (the same DB_* and
REDIS_* variables). Each result is one JSON object per line on stdout;
errors go to stderr. Exit codes: 0 done, 1 failed (e.g. no such user),
2 bad arguments, 3 done in the database but the pods could not be told to
end live sessions (Redis unreachable; they end at their next reconnect).

Commands:
  add-user NAME [--password-stdin]
        create an account; without --password-stdin a random password is
        generated and printed (\"password\")
  reset-password NAME [--password-stdin]
        set a new password (printed when generated); ends the user's live
        sessions on every pod
  disable NAME      refuse the user's logins and resumes, and end their
                    live sessions on every pod at once
  enable NAME       allow a disabled user again
  delete NAME --yes remove the account and end its sessions. Their groups
                    are left first (the admin role passes on; an emptied
                    group closes); their private conversations (both
                    sides), broadcasts and group messages are deleted with
                    them, as the original schema cascades. To keep the
                    history, disable instead.
  list              every account: user, created_at, last_login (UTC),
                    disabled
  invite [--count N] [--expires-hours H] [--note TEXT]
                    one-time sign-up codes for REGISTRATION=invite (shown
                    once; only their hashes are stored)

Examples, in a cluster:
  kubectl exec deploy/chat-server -- chat_admin add-user alice
  echo 's3cret' | kubectl exec -i deploy/chat-server -- chat_admin reset-password alice --password-stdin
  kubectl exec deploy/chat-server -- chat_admin disable mallory
  kubectl exec deploy/chat-server -- chat_admin invite --count 5 --expires-hours 72 --note 'new team'
  kubectl exec deploy/chat-server -- chat_admin list | jq -r 'select(.disabled) | .user'";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    AddUser { name: String, password_stdin: bool },
    ResetPassword { name: String, password_stdin: bool },
    Disable { name: String },
    Enable { name: String },
    Delete { name: String },
    List,
    Invite { count: usize, expires_hours: Option<u32>, note: Option<String> },
}

pub fn parse(args: &[String]) -> Result<Command, Failure> {
    let usage = |why: &str| Failure::Usage(why.to_string());
    let (cmd, rest) = args.split_first().ok_or_else(|| usage("no command"))?;
    let mut flags: Vec<&str> = rest.iter().map(String::as_str).collect();
    let mut take_flag = |flag: &str| match flags.iter().position(|f| *f == flag) {
        Some(i) => {
            flags.remove(i);
            true
        }
        None => false,
    };
    let name = |flags: &[&str]| match flags {
        [name] if !name.starts_with("--") => Ok(name.to_string()),
        _ => Err(usage(&format!("{cmd} takes one NAME"))),
    };
    let command = match cmd.as_str() {
        "add-user" => {
            let password_stdin = take_flag("--password-stdin");
            Command::AddUser { name: name(&flags)?, password_stdin }
        }
        "reset-password" => {
            let password_stdin = take_flag("--password-stdin");
            Command::ResetPassword { name: name(&flags)?, password_stdin }
        }
        "disable" => Command::Disable { name: name(&flags)? },
        "enable" => Command::Enable { name: name(&flags)? },
        "delete" => {
            if !take_flag("--yes") {
                return Err(usage("delete erases the account and its messages: add --yes"));
            }
            Command::Delete { name: name(&flags)? }
        }
        "list" if flags.is_empty() => Command::List,
        "invite" => {
            let (mut count, mut expires_hours, mut note) = (1, None, None);
            let mut it = flags.iter();
            while let Some(flag) = it.next() {
                let value = it.next().ok_or_else(|| usage(&format!("{flag} needs a value")))?;
                match *flag {
                    "--count" => {
                        count = value
                            .parse()
                            .ok()
                            .filter(|n| (1..=1000).contains(n))
                            .ok_or_else(|| usage("--count takes a number from 1 to 1000"))?
                    }
                    "--expires-hours" => {
                        expires_hours = Some(
                            value
                                .parse()
                                .ok()
                                .filter(|h| *h > 0)
                                .ok_or_else(|| usage("--expires-hours takes a whole number of hours above 0"))?,
                        )
                    }
                    "--note" => note = Some(value.to_string()),
                    other => return Err(usage(&format!("unknown option {other}"))),
                }
            }
            Command::Invite { count, expires_hours, note }
        }
        other => return Err(usage(&format!("unknown command {other:?}"))),
    };
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, Failure> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn commands_and_their_refusals() {
        assert_eq!(
            p(&["add-user", "--password-stdin", "ann"]).unwrap(),
            Command::AddUser { name: "ann".into(), password_stdin: true }
        );
        assert_eq!(p(&["delete", "ann", "--yes"]).unwrap(), Command::Delete { name: "ann".into() });
        assert!(matches!(p(&["delete", "ann"]), Err(Failure::Usage(_))));
        assert!(matches!(p(&["disable"]), Err(Failure::Usage(_))));
        assert!(matches!(p(&["disable", "a", "b"]), Err(Failure::Usage(_))));
        assert_eq!(
            p(&["invite", "--count", "3", "--expires-hours", "48"]).unwrap(),
            Command::Invite { count: 3, expires_hours: Some(48), note: None }
        );
        assert!(matches!(p(&["invite", "--count", "0"]), Err(Failure::Usage(_))));
        assert!(matches!(p(&["frobnicate"]), Err(Failure::Usage(_))));
    }
}
