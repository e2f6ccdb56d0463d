-- chatp schema, applied at every server start-up (and by docker-compose and
-- the Helm chart's PostgreSQL at its first start). Every statement is
-- idempotent.
--
-- Part 1 is the database of the original Python chatp: the same tables,
-- columns, names, types, defaults and constraints its Helm chart creates. On
-- a database the Python chatp made, every CREATE here finds its table and
-- does nothing, and the rows are kept as they are.
--
-- Part 2 holds chatp's migrations. They only add: nullable columns the
-- original never inserts into, indexes. An index on a table the original
-- has is built CONCURRENTLY (writes go on during the build): chatp runs
-- those statements outside the migration's transaction, after it, and
-- rebuilds one a failed build left invalid; psql runs every statement on
-- its own, so the file also applies as it is. They never rename, drop or tighten
-- (NOT NULL, new constraints) anything the original uses, so the same
-- statements take a fresh database and an old one to the same end state, and
-- the Python server still runs on the result (README, "Moving from Python
-- chatp").

-- ------------------------------------------------ Part 1: the original tables

CREATE TABLE IF NOT EXISTS users (
    user_id SERIAL PRIMARY KEY,
    username VARCHAR(50) UNIQUE NOT NULL,
    -- Argon2id (PHC string) for users chatp stored; the original's unsalted
    -- hex SHA-256 until that user's first successful login on chatp.
    password_hash VARCHAR(255) NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

-- One row per pair of users, participant1_id < participant2_id.
CREATE TABLE IF NOT EXISTS conversations (
    conversation_id SERIAL PRIMARY KEY,
    participant1_id INTEGER REFERENCES users(user_id) ON DELETE CASCADE,
    participant2_id INTEGER REFERENCES users(user_id) ON DELETE CASCADE,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    last_message_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT different_participants CHECK (participant1_id < participant2_id),
    CONSTRAINT unique_conversation UNIQUE (participant1_id, participant2_id)
);

CREATE TABLE IF NOT EXISTS messages (
    message_id SERIAL PRIMARY KEY,
    conversation_id INTEGER REFERENCES conversations(conversation_id) ON DELETE CASCADE,
    sender_id INTEGER REFERENCES users(user_id) ON DELETE CASCADE,
    sender_username VARCHAR(50) NOT NULL,
    message_text TEXT NOT NULL,
    timestamp TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    is_read BOOLEAN DEFAULT FALSE,
    message_type VARCHAR(20) DEFAULT 'private'
);

CREATE TABLE IF NOT EXISTS broadcast_messages (
    broadcast_id SERIAL PRIMARY KEY,
    sender_id INTEGER REFERENCES users(user_id) ON DELETE CASCADE,
    sender_username VARCHAR(50) NOT NULL,
    message_text TEXT NOT NULL,
    timestamp TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

-- A row per login; logout_time and is_active = FALSE at logout.
CREATE TABLE IF NOT EXISTS sessions (
    session_id SERIAL PRIMARY KEY,
    user_id INTEGER REFERENCES users(user_id) ON DELETE CASCADE,
    login_time TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    logout_time TIMESTAMP,
    is_active BOOLEAN DEFAULT TRUE
);

-- is_active turns FALSE when the last member leaves.
CREATE TABLE IF NOT EXISTS groups (
    group_id SERIAL PRIMARY KEY,
    group_name VARCHAR(100) NOT NULL,
    creator_id INTEGER REFERENCES users(user_id) ON DELETE SET NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    description TEXT,
    is_active BOOLEAN DEFAULT TRUE
);

-- role: 'admin' (the creator, or whom it was handed to) or 'member'.
CREATE TABLE IF NOT EXISTS group_members (
    membership_id SERIAL PRIMARY KEY,
    group_id INTEGER REFERENCES groups(group_id) ON DELETE CASCADE,
    user_id INTEGER REFERENCES users(user_id) ON DELETE CASCADE,
    joined_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    role VARCHAR(20) DEFAULT 'member',
    CONSTRAINT unique_group_member UNIQUE (group_id, user_id)
);

CREATE TABLE IF NOT EXISTS group_messages (
    message_id SERIAL PRIMARY KEY,
    group_id INTEGER REFERENCES groups(group_id) ON DELETE CASCADE,
    sender_id INTEGER REFERENCES users(user_id) ON DELETE CASCADE,
    sender_username VARCHAR(50) NOT NULL,
    message_text TEXT NOT NULL,
    timestamp TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

CREATE INDEX IF NOT EXISTS idx_conversations_participant1 ON conversations(participant1_id);
CREATE INDEX IF NOT EXISTS idx_conversations_participant2 ON conversations(participant2_id);
CREATE INDEX IF NOT EXISTS idx_conversations_last_message ON conversations(last_message_at DESC);
CREATE INDEX IF NOT EXISTS idx_messages_conversation ON messages(conversation_id);
CREATE INDEX IF NOT EXISTS idx_messages_timestamp ON messages(timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_messages_sender ON messages(sender_id);
CREATE INDEX IF NOT EXISTS idx_messages_type ON messages(message_type);
CREATE INDEX IF NOT EXISTS idx_sessions_user_id ON sessions(user_id);
CREATE INDEX IF NOT EXISTS idx_sessions_active ON sessions(is_active);
CREATE INDEX IF NOT EXISTS idx_broadcast_timestamp ON broadcast_messages(timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_broadcast_sender ON broadcast_messages(sender_id);
CREATE INDEX IF NOT EXISTS idx_groups_creator ON groups(creator_id);
CREATE INDEX IF NOT EXISTS idx_groups_active ON groups(is_active);
CREATE INDEX IF NOT EXISTS idx_group_members_group ON group_members(group_id);
CREATE INDEX IF NOT EXISTS idx_group_members_user ON group_members(user_id);
CREATE INDEX IF NOT EXISTS idx_group_messages_group ON group_messages(group_id);
CREATE INDEX IF NOT EXISTS idx_group_messages_timestamp ON group_messages(timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_group_messages_sender ON group_messages(sender_id);

-- ------------------------------------------------- Part 2: chatp migrations

-- 1. When each user last logged in (informational; the original has no such
--    column and never writes it).
ALTER TABLE users ADD COLUMN IF NOT EXISTS last_login TIMESTAMP;

-- 2. The pod that holds a session, so the sessions a dead pod left open are
--    closed when it is found dead (or when it starts again). NULL on rows
--    the Python server wrote.
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS pod_id VARCHAR(253);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_sessions_active_pod ON sessions(pod_id) WHERE is_active;

-- 3. History, as the original reads it (newest first by timestamp, the last
--    50), with the row id breaking ties between messages committed together:
--    one index scan per conversation, group or the channel.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_messages_history ON messages(conversation_id, timestamp, message_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_broadcast_history ON broadcast_messages(timestamp, broadcast_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_group_messages_history ON group_messages(group_id, timestamp, message_id);

-- 4. New usernames are unique as people read them: the key is the name after
--    Unicode NFKC, without invisible characters, in lower case (computed by
--    chatp, filled in at start-up for rows it did not write). Not a unique
--    index: an old database may already hold "Alice" and "alice".
ALTER TABLE users ADD COLUMN IF NOT EXISTS username_key TEXT;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_username_key ON users(username_key);

-- 5. Which schema.sql a database has had applied (a digest of this file,
--    written by chatp after the rest succeeded): a pod that finds its own
--    version skips the file and takes no lock at all.
CREATE TABLE IF NOT EXISTS chatp_schema (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version TEXT NOT NULL,
    applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

-- 6. Resume tokens of protocol-2 sessions (docs/PROTOCOL.md): only the
--    SHA-256 of a token is kept. expires_at is empty while its connection
--    lives, then RESUME_TTL_SECS later; a token resumes once. The last_*
--    columns hold the newest message ids when the session began: a resume
--    never replays anything older.
CREATE TABLE IF NOT EXISTS chatp_resume_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    pod_id VARCHAR(253),
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    expires_at TIMESTAMP,
    last_private BIGINT NOT NULL DEFAULT 0,
    last_broadcast BIGINT NOT NULL DEFAULT 0,
    last_group BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_resume_tokens_live_pod ON chatp_resume_tokens(pod_id) WHERE expires_at IS NULL;

-- 7. Accounts an administrator disabled (chat_admin disable): they cannot
--    log in or resume; NULL for every other account. The Python server does
--    not read it (README, "Users").
ALTER TABLE users ADD COLUMN IF NOT EXISTS disabled_at TIMESTAMP;

-- 8. Invite codes (REGISTRATION=invite; chat_admin invite): only the SHA-256
--    of a code is kept; a code signs up one account, before expires_at.
CREATE TABLE IF NOT EXISTS chatp_invites (
    code_hash TEXT PRIMARY KEY,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    expires_at TIMESTAMP,
    used_at TIMESTAMP,
    used_by INTEGER REFERENCES users(user_id) ON DELETE SET NULL,
    note TEXT
);

-- 9. A user's session epoch: every change that ends their sessions
--    (password changed or reset, account disabled) adds one, in the same
--    statement. A login or resume checked against an older epoch ends
--    itself once registered, so none in flight survives the change. NULL
--    (read as 0) until the first such change; the Python server ignores it.
ALTER TABLE users ADD COLUMN IF NOT EXISTS session_epoch BIGINT;

-- 10. The message writer's marks: each statement that stores messages also
--     writes a random token with the ids it stored, in the same transaction.
--     When the connection dies with a statement out, the writer asks for its
--     token: there, the messages were stored (with those ids); not there,
--     they were not. Rows older than an hour are purged.
CREATE TABLE IF NOT EXISTS chatp_write_marks (
    mark TEXT PRIMARY KEY,
    ids BIGINT[] NOT NULL,
    written_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);

-- 11. Finding people and groups by the start of their name (protocol 2's
--     search), in byte order so that a prefix is a range of the index
--     whatever the database's collation.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_username_key_c ON users (username_key COLLATE "C");
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_groups_name_c ON groups (lower(group_name) COLLATE "C") WHERE is_active;

-- 12. A page of a group's members (admins first, then by joining) read in
--     order from the index, with the member's id: a 5,000-member group's
--     first page reads 100 entries instead of sorting all 5,000.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_group_members_page ON group_members (group_id, ((role = 'admin') IS TRUE) DESC, joined_at, membership_id) INCLUDE (user_id);
