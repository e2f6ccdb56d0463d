//! Groups: membership, the admin role, group messages and their history.

use std::sync::LazyLock;

use postgres::types::Type;

use super::{history_sql, DbManager, HistoryEntry, StoreResult};

/// A group as the group screens show it.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub id: i32,
    pub name: String,
    pub description: Option<String>,
    pub member_count: i64,
    /// For "my groups": the user is its admin. For "browse": unused.
    pub is_admin: bool,
    /// The user is a member.
    pub is_member: bool,
}

#[derive(Debug, Clone)]
pub struct GroupMember {
    pub username: String,
    pub is_admin: bool,
    /// `YYYY-MM-DD`
    pub joined: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateGroupOutcome {
    Created(i32),
    NameTaken,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinOutcome {
    Joined,
    AlreadyMember,
    NotFound,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveOutcome {
    Left,
    /// The last member left; the group is now inactive.
    LeftAndClosed,
    NotMember,
}

/// A browse row's columns ($1: the user asking, for "member of it").
const BROWSE_COLUMNS: &str = "g.group_id, g.group_name, g.description, \
     (SELECT COUNT(*) FROM group_members c WHERE c.group_id = g.group_id), \
     EXISTS (SELECT 1 FROM group_members m WHERE m.group_id = g.group_id AND m.user_id = $1)";

/// How many groups are active: counted up to [`GROUPS_COUNTED_BELOW`],
/// PostgreSQL's estimate beyond (the entries of the partial index on the
/// active groups' names), so that browsing 10,000 groups counts none.
fn active_groups() -> String {
    super::stats::counted_or_estimated(
        "idx_groups_name_c",
        "SELECT count(*) FROM groups WHERE is_active",
        GROUPS_COUNTED_BELOW,
    )
}

/// A page of active groups, newest first, each row also saying how many
/// groups are active ($2: rows, $3: rows skipped).
static BROWSE_PAGE: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {BROWSE_COLUMNS}, {} FROM groups g WHERE g.is_active ORDER BY g.group_id DESC LIMIT $2 OFFSET $3",
        active_groups()
    )
});

/// Active groups counted exactly below this many (a count costs well
/// under a millisecond there).
pub const GROUPS_COUNTED_BELOW: i64 = 1_000;

impl DbManager {
    // ----------------------------------------------------------- groups

    /// The active groups `user_id` belongs to, oldest first.
    pub fn user_groups(&self, user_id: i32) -> StoreResult<Vec<GroupSummary>> {
        let rows = self.conn()?.query(
            "SELECT g.group_id, g.group_name, g.description, \
                    (SELECT COUNT(*) FROM group_members c WHERE c.group_id = g.group_id), \
                    gm.role = 'admin' \
             FROM groups g JOIN group_members gm ON gm.group_id = g.group_id \
             WHERE gm.user_id = $1 AND g.is_active ORDER BY g.group_id",
            &[&user_id],
        )?;
        Ok(rows.iter().map(|r| group_summary(r, r.get::<_, Option<bool>>(4).unwrap_or(false), true)).collect())
    }

    /// The active groups to browse, oldest first, with whether `user_id` is
    /// in each: all of them when there are at most `max`, else the newest
    /// `max`; and how many older ones are not listed (an estimate beyond
    /// [`GROUPS_COUNTED_BELOW`] groups). One statement, reading `max`
    /// groups through the primary key.
    pub fn browse_groups(&self, user_id: i32, max: usize) -> StoreResult<(Vec<GroupSummary>, i64)> {
        let (groups, older, _) = self.browse_groups_page(user_id, 1, max)?;
        Ok((groups, older))
    }

    /// Page `page` (from 1) of the active groups, newest first by page and
    /// oldest first within it: page 1 is what [`DbManager::browse_groups`]
    /// shows. Also how many older groups follow and how many pages there are.
    pub fn browse_groups_page(
        &self,
        user_id: i32,
        page: i64,
        max: usize,
    ) -> StoreResult<(Vec<GroupSummary>, i64, i64)> {
        let mut c = self.conn()?;
        let per_page = max as i64;
        let skip = (page - 1).saturating_mul(per_page);
        let rows = c.query_typed(
            BROWSE_PAGE.as_str(),
            &[(&user_id, Type::INT4), (&per_page, Type::INT8), (&skip, Type::INT8)],
        )?;
        let active: i64 = match rows.first() {
            Some(r) => r.get(5),
            None => c.query_one(format!("SELECT {}", active_groups()).as_str(), &[])?.get(0),
        };
        let mut groups: Vec<GroupSummary> = rows.iter().map(|r| group_summary(r, false, r.get(4))).collect();
        groups.reverse();
        let older = (active - skip - groups.len() as i64).max(0);
        Ok((groups, older, ((active + per_page - 1) / per_page).max(1)))
    }

    /// Active groups whose names start with `typed` (case aside), by name,
    /// at most `max`, and how many more.
    pub fn groups_with_prefix(&self, user_id: i32, typed: &str, max: usize) -> StoreResult<(Vec<GroupSummary>, i64)> {
        let low = typed.to_lowercase();
        let high = format!("{low}\u{10FFFF}");
        let range =
            "g.is_active AND lower(g.group_name) COLLATE \"C\" >= $2 AND lower(g.group_name) COLLATE \"C\" < $3";
        let mut c = self.conn()?;
        let rows = c.query(
            format!("SELECT {BROWSE_COLUMNS} FROM groups g WHERE {range} ORDER BY lower(g.group_name) COLLATE \"C\", g.group_id LIMIT $4")
                .as_str(),
            &[&user_id, &low, &high, &(max as i64 + 1)],
        )?;
        let mut groups: Vec<GroupSummary> = rows.iter().map(|r| group_summary(r, false, r.get(4))).collect();
        if groups.len() <= max {
            return Ok((groups, 0));
        }
        groups.truncate(max);
        let all: i64 = c
            .query_one(
                format!("SELECT count(*) FROM groups g WHERE {range} AND $1::int4 IS NOT NULL").as_str(),
                &[&user_id, &low, &high],
            )?
            .get(0);
        Ok((groups, all - max as i64))
    }

    /// The name of an active group `user_id` belongs to; `None` otherwise.
    pub fn member_group_name(&self, group_id: i32, user_id: i32) -> StoreResult<Option<String>> {
        let row = self.conn()?.query_opt(
            "SELECT g.group_name FROM groups g JOIN group_members gm ON gm.group_id = g.group_id \
             WHERE g.group_id = $1 AND gm.user_id = $2 AND g.is_active",
            &[&group_id, &user_id],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Creates a group with `creator` as its admin. Names are unique among
    /// active groups (checked under a lock on the name).
    pub fn create_group(&self, name: &str, description: Option<&str>, creator: i32) -> StoreResult<CreateGroupOutcome> {
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock(hashtext('group:' || $1))", &[&name])?;
        let taken = tx.query_opt("SELECT 1 FROM groups WHERE group_name = $1 AND is_active", &[&name])?;
        if taken.is_some() {
            return Ok(CreateGroupOutcome::NameTaken);
        }
        let id: i32 = tx
            .query_one(
                "INSERT INTO groups (group_name, description, creator_id) VALUES ($1, $2, $3) RETURNING group_id",
                &[&name, &description, &creator],
            )?
            .get(0);
        tx.execute("INSERT INTO group_members (group_id, user_id, role) VALUES ($1, $2, 'admin')", &[&id, &creator])?;
        tx.commit()?;
        Ok(CreateGroupOutcome::Created(id))
    }

    pub fn join_group(&self, group_id: i32, user_id: i32) -> StoreResult<JoinOutcome> {
        let row = self.conn()?.query_one(
            "WITH g AS (SELECT group_id FROM groups WHERE group_id = $1 AND is_active), \
                  ins AS (INSERT INTO group_members (group_id, user_id, role) \
                          SELECT group_id, $2, 'member' FROM g \
                          ON CONFLICT (group_id, user_id) DO NOTHING RETURNING 1) \
             SELECT EXISTS (SELECT 1 FROM g), EXISTS (SELECT 1 FROM ins)",
            &[&group_id, &user_id],
        )?;
        Ok(match (row.get(0), row.get(1)) {
            (false, _) => JoinOutcome::NotFound,
            (true, true) => JoinOutcome::Joined,
            (true, false) => JoinOutcome::AlreadyMember,
        })
    }

    /// Leaves a group. An admin who leaves hands the role to the longest
    /// member; the last member to leave closes the group.
    pub fn leave_group(&self, group_id: i32, user_id: i32) -> StoreResult<LeaveOutcome> {
        let mut c = self.conn()?;
        let mut tx = c.transaction()?;
        // Lock the group row so concurrent leaves see each other.
        if tx.query_opt("SELECT 1 FROM groups WHERE group_id = $1 AND is_active FOR UPDATE", &[&group_id])?.is_none() {
            return Ok(LeaveOutcome::NotMember);
        }
        let left = tx.query_opt(
            "DELETE FROM group_members WHERE group_id = $1 AND user_id = $2 RETURNING role",
            &[&group_id, &user_id],
        )?;
        let Some(left) = left else {
            return Ok(LeaveOutcome::NotMember);
        };
        let remaining: i64 =
            tx.query_one("SELECT COUNT(*) FROM group_members WHERE group_id = $1", &[&group_id])?.get(0);
        let outcome = if remaining == 0 {
            tx.execute("UPDATE groups SET is_active = FALSE WHERE group_id = $1", &[&group_id])?;
            LeaveOutcome::LeftAndClosed
        } else {
            if left.get::<_, Option<String>>(0).as_deref() == Some("admin") {
                tx.execute(
                    "UPDATE group_members SET role = 'admin' WHERE group_id = $1 AND user_id = ( \
                       SELECT user_id FROM group_members WHERE group_id = $1 \
                       AND NOT EXISTS (SELECT 1 FROM group_members a WHERE a.group_id = $1 AND a.role = 'admin') \
                       ORDER BY joined_at, membership_id LIMIT 1)",
                    &[&group_id],
                )?;
            }
            LeaveOutcome::Left
        };
        tx.commit()?;
        Ok(outcome)
    }

    /// The first `max` members (admins first, then by joining) and how
    /// many more there are.
    pub fn group_members(&self, group_id: i32, max: usize) -> StoreResult<(Vec<GroupMember>, i64)> {
        let (members, more, _) = self.group_members_page(group_id, 1, max)?;
        Ok((members, more))
    }

    /// Page `page` (from 1) of `max` members (admins first, then by
    /// joining), how many come after it, and how many members there are.
    pub fn group_members_page(
        &self,
        group_id: i32,
        page: i64,
        max: usize,
    ) -> StoreResult<(Vec<GroupMember>, i64, i64)> {
        let mut c = self.conn()?;
        // The page is read in order from its index (migration 12), the
        // names from the per-pod map: no sort of the group, no join. One
        // round trip (the parameters' types given).
        let before = (page - 1).saturating_mul(max as i64);
        let rows = c.query_typed(
            "SELECT user_id, role = 'admin', COALESCE(to_char(joined_at, 'YYYY-MM-DD'), ''), \
                    (SELECT count(*) FROM group_members WHERE group_id = $1) \
             FROM group_members WHERE group_id = $1 \
             ORDER BY ((role = 'admin') IS TRUE) DESC, joined_at, membership_id LIMIT $2 OFFSET $3",
            &[(&group_id, Type::INT4), (&(max as i64), Type::INT8), (&before, Type::INT8)],
        )?;
        // Python-era rows may lack a user: they name no one, as the join did.
        let ids: Vec<i32> = rows.iter().filter_map(|r| r.get(0)).collect();
        let names = self.names.named(&ids, &mut c)?;
        let members: Vec<GroupMember> = rows
            .iter()
            .filter_map(|r| {
                Some(GroupMember {
                    username: names.get(&r.get::<_, Option<i32>>(0)?)?.clone(),
                    is_admin: r.get::<_, Option<bool>>(1).unwrap_or(false),
                    joined: r.get(2),
                })
            })
            .collect();
        let all: i64 = match rows.first() {
            Some(r) => r.get(3),
            None => c.query_one("SELECT count(*) FROM group_members WHERE group_id = $1", &[&group_id])?.get(0),
        };
        let more = (all - before - rows.len() as i64).max(0);
        Ok((members, more, all))
    }

    /// Stores a group message and returns its id; `None`: the sender is no
    /// longer a member of an active group and nothing was stored.
    pub fn save_group_message(
        &self,
        group_id: i32,
        sender_id: i32,
        sender: &str,
        text: &str,
    ) -> StoreResult<Option<i64>> {
        let row = self.conn()?.query_opt(
            "WITH ok AS (SELECT 1 FROM group_members gm JOIN groups g ON g.group_id = gm.group_id \
                         WHERE gm.group_id = $1 AND gm.user_id = $2 AND g.is_active) \
             INSERT INTO group_messages (group_id, sender_id, sender_username, message_text) \
             SELECT $1, $2, $3, $4 FROM ok RETURNING message_id::int8",
            &[&group_id, &sender_id, &sender, &text],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    /// The names of a group's members now (just after a message was
    /// stored: they are whom it goes to). The ids come from the group's
    /// index, the names from [`names::Names`], never from a join with
    /// every user.
    pub fn group_member_names(&self, group_id: i32) -> StoreResult<Vec<String>> {
        let mut c = self.conn()?;
        let ids: Vec<i32> = c
            .query("SELECT user_id FROM group_members WHERE group_id = $1", &[&group_id])?
            .iter()
            .map(|r| r.get(0))
            .collect();
        self.names.of(&ids, &mut c)
    }

    pub fn recent_group_messages(&self, group_id: i32) -> StoreResult<Vec<HistoryEntry>> {
        static SQL: LazyLock<String> =
            LazyLock::new(|| history_sql("group_messages", "message_id", "WHERE group_id = $1"));
        self.history(&SQL, &[&group_id])
    }
}

/// A group row of [`DbManager::user_groups`] or [`DbManager::all_groups`]:
/// id, name, description, member count first.
fn group_summary(r: &postgres::Row, is_admin: bool, is_member: bool) -> GroupSummary {
    GroupSummary { id: r.get(0), name: r.get(1), description: r.get(2), member_count: r.get(3), is_admin, is_member }
}
