//! `chat_admin`'s configuration: the same PostgreSQL and Redis variables as
//! chat_server's, so it runs in a chat pod with nothing more to set.

use super::{ConfigError, DbConfig, Env, RedisConfig};

#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub db: DbConfig,
    pub redis: RedisConfig,
}

impl AdminConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let env = Env(|name: &str| std::env::var(name).ok());
        Ok(AdminConfig { db: DbConfig::from_lookup(&env)?, redis: RedisConfig::from_lookup(&env)? })
    }
}
