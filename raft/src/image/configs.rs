//! The configs sub-image: dynamic topic and broker config overrides.

use std::collections::BTreeMap;

use super::cluster::BrokerId;

/// What a config applies to. Topic configs are keyed by name, as Kafka's are.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum ConfigResource {
    Topic(String),
    Broker(BrokerId),
}

/// Every resource's overrides; a resource with none is absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigsImage {
    pub resources: BTreeMap<ConfigResource, BTreeMap<String, String>>,
}

impl ConfigsImage {
    pub const EMPTY: ConfigsImage = ConfigsImage {
        resources: BTreeMap::new(),
    };

    pub fn configs(&self, resource: &ConfigResource) -> Option<&BTreeMap<String, String>> {
        self.resources.get(resource)
    }

    pub fn topic_configs(&self, topic_name: &str) -> Option<&BTreeMap<String, String>> {
        self.resources
            .get(&ConfigResource::Topic(topic_name.to_string()))
    }
}
