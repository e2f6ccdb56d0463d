//! `chat_admin`'s configuration: the same PostgreSQL and Redis variables as
//! chat_server's, so it runs in a chat pod with nothing more to set.

use super::{ConfigError, DbConfig, Env, RedisConfig};

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub db: DbConfig,
    pub redis: RedisConfig,
    /// Signs what chat_admin publishes on the admin channel.
    pub admin_channel_key: Vec<u8>,
}

impl AdminConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let env = Env(|name: &str| std::env::var(name).ok());
        let db = DbConfig::from_lookup(&env)?;
        let admin_channel_key = super::admin_channel_key(&env, &db);
        Ok(AdminConfig { db, redis: RedisConfig::from_lookup(&env)?, admin_channel_key })
    }
}
