//! Metadata store round trips, durability across reopen, and damaged files.

use std::collections::BTreeMap;

use sluice_storage::{MetadataStore, TopicRecord};

fn topic(name: &str, partitions: i32) -> TopicRecord {
    TopicRecord {
        name: name.to_owned(),
        topic_id: [partitions as u8; 16],
        partition_count: partitions,
        configs: BTreeMap::from([("retention.ms".to_owned(), "60000".to_owned())]),
    }
}

#[test]
fn topics_offsets_cluster_id_and_producer_ids_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.redb");
    {
        let store = MetadataStore::open(&path).unwrap();
        assert!(store.load_topics().unwrap().is_empty());
        store.put_topic(&topic("a", 1)).unwrap();
        store.put_topic(&topic("b", 2)).unwrap();
        store.put_topic(&topic("a", 3)).unwrap();
        store.set_log_start_offset("b", 0, 10).unwrap();
        store.set_log_start_offset("b", 1, 20).unwrap();
        store.set_log_start_offset("b", 0, 15).unwrap();
        assert_eq!(
            store
                .get_or_init_cluster_id(|| "cluster-1".to_owned())
                .unwrap(),
            "cluster-1"
        );
        assert_eq!(store.next_producer_id_block(1000).unwrap(), 0);
        assert_eq!(store.next_producer_id_block(1000).unwrap(), 1000);
    }
    let store = MetadataStore::open(&path).unwrap();
    assert_eq!(
        store.load_topics().unwrap(),
        vec![topic("a", 3), topic("b", 2)]
    );
    assert_eq!(
        store.log_start_offsets("b").unwrap(),
        BTreeMap::from([(0, 15), (1, 20)])
    );
    assert!(store.log_start_offsets("a").unwrap().is_empty());
    let cluster_id = store
        .get_or_init_cluster_id(|| panic!("must not make a new id"))
        .unwrap();
    assert_eq!(cluster_id, "cluster-1");
    assert_eq!(store.next_producer_id_block(10).unwrap(), 2000);

    store.delete_topic("b").unwrap();
    assert_eq!(store.load_topics().unwrap(), vec![topic("a", 3)]);
    assert!(store.log_start_offsets("b").unwrap().is_empty());
    store.delete_topic("missing").unwrap();
    assert!(store.set_log_start_offset("a", -1, 0).is_err());
}

#[test]
fn garbage_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("metadata.redb");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    assert!(MetadataStore::open(&path).is_err());
}
