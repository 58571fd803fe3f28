//! Topic configs: the names Kafka clients set, their validation, defaults, and the
//! [`LogConfig`] they become.
//!
//! A topic stores only its overrides; every other key reads through to the broker default, as
//! `kafka-configs --describe` shows it.

use std::collections::BTreeMap;

use sluice_storage::{LogConfig, TimestampType};

use crate::config::{Config, FlushPolicy};

/// DescribeConfigs `config_type` values (Kafka's `ConfigResource.Type`-independent ConfigType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// One topic config key sluice knows.
#[derive(Debug)]
pub struct ConfigKey {
    pub name: &'static str,
    pub config_type: ConfigType,
    /// Smallest accepted value for numeric keys.
    pub minimum: i64,
    /// Accepted values for enumerated string keys (empty: any).
    pub choices: &'static [&'static str],
}

pub const RETENTION_MS: &str = "retention.ms";
pub const RETENTION_BYTES: &str = "retention.bytes";
pub const SEGMENT_BYTES: &str = "segment.bytes";
pub const SEGMENT_MS: &str = "segment.ms";
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
pub const TIMESTAMP_TYPE: &str = "message.timestamp.type";
pub const CLEANUP_POLICY: &str = "cleanup.policy";
pub const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
pub const COMPRESSION_TYPE: &str = "compression.type";
pub const INDEX_INTERVAL_BYTES: &str = "index.interval.bytes";
pub const DELETE_RETENTION_MS: &str = "delete.retention.ms";
pub const MIN_CLEANABLE_DIRTY_RATIO: &str = "min.cleanable.dirty.ratio";
pub const MIN_COMPACTION_LAG_MS: &str = "min.compaction.lag.ms";
pub const MAX_COMPACTION_LAG_MS: &str = "max.compaction.lag.ms";
/// `cleanup.policy` values.
pub const POLICY_COMPACT: &str = "compact";
pub const POLICY_DELETE: &str = "delete";

/// Kafka's built-in defaults of the compaction keys.
pub const DELETE_RETENTION_MS_DEFAULT: i64 = 24 * 60 * 60 * 1000;
pub const MIN_CLEANABLE_DIRTY_RATIO_DEFAULT: f64 = 0.5;
pub const MIN_COMPACTION_LAG_MS_DEFAULT: i64 = 0;
pub const MAX_COMPACTION_LAG_MS_DEFAULT: i64 = i64::MAX;
/// Kafka 3.x: whether Fetch v0-v3 readers get stored batches converted to their old format.
pub const MESSAGE_DOWNCONVERSION_ENABLE: &str = "message.downconversion.enable";

/// Kafka 4.x: segment.bytes may not go below 1 MiB (KIP-1030).
const SEGMENT_BYTES_MIN: i64 = 1024 * 1024;

/// The keys sluice accepts, sorted by name. Anything else is INVALID_CONFIG, as in Kafka.
pub const CONFIG_KEYS: &[ConfigKey] = &[
    key_choice(
        CLEANUP_POLICY,
        ConfigType::List,
        &[POLICY_COMPACT, POLICY_DELETE],
    ),
    // Stored batches keep the producer's codec; only "producer" describes what we do.
    key_choice(COMPRESSION_TYPE, ConfigType::String, &["producer"]),
    key_number(DELETE_RETENTION_MS, ConfigType::Long, 0),
    key_number(INDEX_INTERVAL_BYTES, ConfigType::Int, 0),
    key_number(MAX_COMPACTION_LAG_MS, ConfigType::Long, 1),
    key_number(MAX_MESSAGE_BYTES, ConfigType::Int, 0),
    key_choice(
        MESSAGE_DOWNCONVERSION_ENABLE,
        ConfigType::Boolean,
        &["true", "false"],
    ),
    key_choice(
        TIMESTAMP_TYPE,
        ConfigType::String,
        &["CreateTime", "LogAppendTime"],
    ),
    key_ratio(MIN_CLEANABLE_DIRTY_RATIO),
    key_number(MIN_COMPACTION_LAG_MS, ConfigType::Long, 0),
    key_number(MIN_INSYNC_REPLICAS, ConfigType::Int, 1),
    key_number(RETENTION_BYTES, ConfigType::Long, -1),
    key_number(RETENTION_MS, ConfigType::Long, -1),
    key_number(SEGMENT_BYTES, ConfigType::Int, SEGMENT_BYTES_MIN),
    key_number(SEGMENT_MS, ConfigType::Long, 1),
];

const fn key_number(name: &'static str, config_type: ConfigType, minimum: i64) -> ConfigKey {
    ConfigKey {
        name,
        config_type,
        minimum,
        choices: &[],
    }
}

/// A double between 0 and 1.
const fn key_ratio(name: &'static str) -> ConfigKey {
    ConfigKey {
        name,
        config_type: ConfigType::Double,
        minimum: 0,
        choices: &[],
    }
}

const fn key_choice(
    name: &'static str,
    config_type: ConfigType,
    choices: &'static [&'static str],
) -> ConfigKey {
    ConfigKey {
        name,
        config_type,
        minimum: 0,
        choices,
    }
}

pub fn config_key(name: &str) -> Option<&'static ConfigKey> {
    CONFIG_KEYS.iter().find(|key| key.name == name)
}

/// Checks one key and value as Kafka's TopicConfig validation would.
pub fn validate_entry(name: &str, value: &str) -> Result<(), String> {
    let Some(key) = config_key(name) else {
        return Err(format!("Unknown topic config name: {name}"));
    };
    if !key.choices.is_empty() {
        let all_chosen = value
            .split(',')
            .map(str::trim)
            .all(|v| key.choices.contains(&v));
        if !all_chosen || value.is_empty() {
            return Err(format!(
                "Invalid value {value} for configuration {name}: String must be one of: {}",
                key.choices.join(", ")
            ));
        }
        return Ok(());
    }
    if key.config_type == ConfigType::Double {
        return validate_ratio(name, value);
    }
    let parsed: i64 = value
        .trim()
        .parse()
        .map_err(|_| format!("Invalid value {value} for configuration {name}: Not a number"))?;
    if key.config_type == ConfigType::Int && i32::try_from(parsed).is_err() {
        return Err(format!(
            "Invalid value {value} for configuration {name}: Not an int"
        ));
    }
    if parsed < key.minimum {
        return Err(format!(
            "Invalid value {value} for configuration {name}: Value must be at least {}",
            key.minimum
        ));
    }
    Ok(())
}

fn validate_ratio(name: &str, value: &str) -> Result<(), String> {
    let parsed: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("Invalid value {value} for configuration {name}: Not a number"))?;
    if !(0.0..=1.0).contains(&parsed) {
        return Err(format!(
            "Invalid value {value} for configuration {name}: Value must be between 0 and 1"
        ));
    }
    Ok(())
}

/// Checks a whole override map.
pub fn validate_overrides(overrides: &BTreeMap<String, String>) -> Result<(), String> {
    overrides
        .iter()
        .try_for_each(|(name, value)| validate_entry(name, value))
}

/// The broker-level default of a key, as text.
pub fn default_value(config: &Config, name: &str) -> String {
    match name {
        RETENTION_MS => config.retention_ms.to_string(),
        RETENTION_BYTES => config.retention_bytes.to_string(),
        SEGMENT_BYTES => config.segment_bytes.to_string(),
        SEGMENT_MS => config.segment_ms.to_string(),
        MAX_MESSAGE_BYTES => config.max_message_bytes.to_string(),
        TIMESTAMP_TYPE => "CreateTime".into(),
        CLEANUP_POLICY => "delete".into(),
        MIN_INSYNC_REPLICAS => "1".into(),
        COMPRESSION_TYPE => "producer".into(),
        INDEX_INTERVAL_BYTES => "4096".into(),
        DELETE_RETENTION_MS => DELETE_RETENTION_MS_DEFAULT.to_string(),
        MIN_CLEANABLE_DIRTY_RATIO => MIN_CLEANABLE_DIRTY_RATIO_DEFAULT.to_string(),
        MIN_COMPACTION_LAG_MS => MIN_COMPACTION_LAG_MS_DEFAULT.to_string(),
        MAX_COMPACTION_LAG_MS => MAX_COMPACTION_LAG_MS_DEFAULT.to_string(),
        MESSAGE_DOWNCONVERSION_ENABLE => config.message_downconversion_enable.to_string(),
        _ => String::new(),
    }
}

/// Kafka's `ConfigEntry.ConfigSource` values sluice reports.
pub const SOURCE_TOPIC: i8 = 1;
pub const SOURCE_STATIC_BROKER: i8 = 4;
pub const SOURCE_DEFAULT: i8 = 5;

/// The broker-level config behind a topic key (Kafka's `ServerTopicConfigSynonyms`), and
/// Apache Kafka's built-in default for it. Tools show a topic key as "set" only when its
/// source is not DEFAULT_CONFIG, so the source must say whether the operator changed it.
pub fn broker_synonym(name: &str) -> Option<(&'static str, &'static str)> {
    let synonym = match name {
        CLEANUP_POLICY => ("log.cleanup.policy", "delete"),
        COMPRESSION_TYPE => ("compression.type", "producer"),
        DELETE_RETENTION_MS => ("log.cleaner.delete.retention.ms", "86400000"),
        MIN_CLEANABLE_DIRTY_RATIO => ("log.cleaner.min.cleanable.ratio", "0.5"),
        MIN_COMPACTION_LAG_MS => ("log.cleaner.min.compaction.lag.ms", "0"),
        MAX_COMPACTION_LAG_MS => ("log.cleaner.max.compaction.lag.ms", "9223372036854775807"),
        INDEX_INTERVAL_BYTES => ("log.index.interval.bytes", "4096"),
        MAX_MESSAGE_BYTES => ("message.max.bytes", "1048588"),
        MESSAGE_DOWNCONVERSION_ENABLE => ("log.message.downconversion.enable", "true"),
        TIMESTAMP_TYPE => ("log.message.timestamp.type", "CreateTime"),
        MIN_INSYNC_REPLICAS => ("min.insync.replicas", "1"),
        RETENTION_BYTES => ("log.retention.bytes", "-1"),
        RETENTION_MS => ("log.retention.ms", "604800000"),
        SEGMENT_BYTES => ("log.segment.bytes", "1073741824"),
        SEGMENT_MS => ("log.roll.ms", "604800000"),
        _ => return None,
    };
    Some(synonym)
}

/// The source of a key's broker-level value: STATIC_BROKER_CONFIG when a flag moved it off
/// Kafka's built-in default, DEFAULT_CONFIG otherwise (as Kafka reports an unset key).
pub fn default_source(config: &Config, name: &str) -> i8 {
    match broker_synonym(name) {
        Some((_, kafka_default)) if default_value(config, name) != kafka_default => {
            SOURCE_STATIC_BROKER
        }
        _ => SOURCE_DEFAULT,
    }
}

/// The source of the value in force: the topic's override, else the broker level's.
pub fn effective_source(config: &Config, overrides: &BTreeMap<String, String>, name: &str) -> i8 {
    if overrides.contains_key(name) {
        SOURCE_TOPIC
    } else {
        default_source(config, name)
    }
}

/// The value in force: the override, or the broker default.
pub fn effective_value(
    config: &Config,
    overrides: &BTreeMap<String, String>,
    name: &str,
) -> String {
    overrides
        .get(name)
        .cloned()
        .unwrap_or_else(|| default_value(config, name))
}

/// Builds the storage configuration of a topic's partitions. Overrides were validated when
/// stored; a value that still fails to parse falls back to the broker default.
pub fn log_config(config: &Config, overrides: &BTreeMap<String, String>) -> LogConfig {
    let number = |name: &str, default: i64| -> i64 {
        overrides
            .get(name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    };
    let timestamp_type = match overrides.get(TIMESTAMP_TYPE).map(String::as_str) {
        Some("LogAppendTime") => TimestampType::LogAppendTime,
        _ => TimestampType::CreateTime,
    };
    let segment_bytes = number(SEGMENT_BYTES, config.segment_bytes as i64);
    // A compact-only topic is never cut by time or size (Kafka: retention applies with
    // the "delete" policy only).
    let deletes = policy_has(overrides, POLICY_DELETE);
    let max_message_bytes = number(MAX_MESSAGE_BYTES, i64::from(config.max_message_bytes));
    let index_interval_bytes = number(INDEX_INTERVAL_BYTES, 4096);
    LogConfig {
        segment_bytes: u64::try_from(segment_bytes).unwrap_or(config.segment_bytes),
        segment_ms: number(SEGMENT_MS, config.segment_ms),
        retention_ms: if deletes {
            number(RETENTION_MS, config.retention_ms)
        } else {
            -1
        },
        retention_bytes: if deletes {
            number(RETENTION_BYTES, config.retention_bytes)
        } else {
            -1
        },
        index_interval_bytes: u32::try_from(index_interval_bytes).unwrap_or(4096),
        max_message_bytes: u32::try_from(max_message_bytes).unwrap_or(config.max_message_bytes),
        timestamp_type,
        flush_every_append: config.flush_policy == FlushPolicy::EveryAppend,
        producer_id_expiration_ms: config.producer_id_expiration_ms,
    }
}

/// Whether the topic's `cleanup.policy` (default "delete") lists `policy`.
pub fn policy_has(overrides: &BTreeMap<String, String>, policy: &str) -> bool {
    overrides
        .get(CLEANUP_POLICY)
        .map_or(POLICY_DELETE, String::as_str)
        .split(',')
        .any(|listed| listed.trim() == policy)
}

/// A compacted topic's cleaner settings (Kafka's defaults for keys not set).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompactionSettings {
    pub delete_retention_ms: i64,
    pub min_cleanable_dirty_ratio: f64,
    pub min_compaction_lag_ms: i64,
    pub max_compaction_lag_ms: i64,
}

/// `None` unless the topic's `cleanup.policy` includes "compact".
pub fn compaction_settings(overrides: &BTreeMap<String, String>) -> Option<CompactionSettings> {
    if !policy_has(overrides, POLICY_COMPACT) {
        return None;
    }
    let number = |name: &str, default: i64| -> i64 {
        overrides
            .get(name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(default)
    };
    Some(CompactionSettings {
        delete_retention_ms: number(DELETE_RETENTION_MS, DELETE_RETENTION_MS_DEFAULT),
        min_cleanable_dirty_ratio: overrides
            .get(MIN_CLEANABLE_DIRTY_RATIO)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(MIN_CLEANABLE_DIRTY_RATIO_DEFAULT),
        min_compaction_lag_ms: number(MIN_COMPACTION_LAG_MS, MIN_COMPACTION_LAG_MS_DEFAULT),
        max_compaction_lag_ms: number(MAX_COMPACTION_LAG_MS, MAX_COMPACTION_LAG_MS_DEFAULT),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn keys_are_sorted_and_unique() {
        for pair in CONFIG_KEYS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} then {}",
                pair[0].name,
                pair[1].name
            );
        }
    }

    #[test]
    fn validates_like_kafka() {
        assert!(validate_entry(RETENTION_MS, "-1").is_ok());
        assert!(validate_entry(RETENTION_MS, "1000").is_ok());
        assert!(validate_entry(RETENTION_MS, "-2").is_err());
        assert!(validate_entry(RETENTION_MS, "soon").is_err());
        assert!(validate_entry(SEGMENT_BYTES, "1000").is_err());
        assert!(validate_entry(SEGMENT_BYTES, "99999999999").is_err());
        assert!(validate_entry(TIMESTAMP_TYPE, "LogAppendTime").is_ok());
        assert!(validate_entry(TIMESTAMP_TYPE, "Never").is_err());
        assert!(validate_entry(CLEANUP_POLICY, "compact").is_ok());
        assert!(validate_entry(CLEANUP_POLICY, "compact,delete").is_ok());
        assert!(validate_entry(CLEANUP_POLICY, "shred").is_err());
        assert!(validate_entry(MIN_CLEANABLE_DIRTY_RATIO, "0.01").is_ok());
        assert!(validate_entry(MIN_CLEANABLE_DIRTY_RATIO, "1.5").is_err());
        assert!(validate_entry(MIN_CLEANABLE_DIRTY_RATIO, "half").is_err());
        assert!(validate_entry(DELETE_RETENTION_MS, "-1").is_err());
        assert!(validate_entry(MAX_COMPACTION_LAG_MS, "0").is_err());
        assert!(validate_entry("no.such.key", "1").is_err());
    }

    #[test]
    fn every_key_has_a_broker_synonym() {
        for key in CONFIG_KEYS {
            assert!(broker_synonym(key.name).is_some(), "{}", key.name);
        }
    }

    #[test]
    fn sources_say_what_the_operator_set() {
        let config = Config::try_parse_from(["sluice"]).expect("defaults");
        let mut overrides = BTreeMap::new();
        overrides.insert(RETENTION_MS.to_string(), "5000".to_string());
        assert_eq!(
            effective_source(&config, &overrides, RETENTION_MS),
            SOURCE_TOPIC
        );
        assert_eq!(
            effective_source(&config, &overrides, SEGMENT_BYTES),
            SOURCE_DEFAULT
        );
        let config = Config::try_parse_from(["sluice", "--retention-ms", "1000"]).expect("flag");
        assert_eq!(default_source(&config, RETENTION_MS), SOURCE_STATIC_BROKER);
        assert_eq!(default_source(&config, RETENTION_BYTES), SOURCE_DEFAULT);
    }

    #[test]
    fn overrides_reach_the_log_config() {
        let config = Config::try_parse_from(["sluice"]).expect("defaults");
        let mut overrides = BTreeMap::new();
        overrides.insert(RETENTION_MS.to_string(), "5000".to_string());
        overrides.insert(TIMESTAMP_TYPE.to_string(), "LogAppendTime".to_string());
        let log = log_config(&config, &overrides);
        assert_eq!(log.retention_ms, 5000);
        assert_eq!(log.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(log.segment_bytes, config.segment_bytes);
        assert_eq!(compaction_settings(&overrides), None);
    }

    #[test]
    fn compact_only_topics_keep_everything_by_time_and_size() {
        let config = Config::try_parse_from(["sluice"]).expect("defaults");
        let mut overrides = BTreeMap::new();
        overrides.insert(RETENTION_MS.to_string(), "5000".to_string());
        overrides.insert(CLEANUP_POLICY.to_string(), "compact".to_string());
        overrides.insert(MIN_CLEANABLE_DIRTY_RATIO.to_string(), "0.1".to_string());
        assert_eq!(log_config(&config, &overrides).retention_ms, -1);
        let settings = compaction_settings(&overrides).expect("compacted");
        assert_eq!(settings.min_cleanable_dirty_ratio, 0.1);
        assert_eq!(settings.delete_retention_ms, DELETE_RETENTION_MS_DEFAULT);
        overrides.insert(CLEANUP_POLICY.to_string(), "compact, delete".to_string());
        assert_eq!(log_config(&config, &overrides).retention_ms, 5000);
        assert!(compaction_settings(&overrides).is_some());
    }
}
