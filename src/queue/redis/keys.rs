//! The queue's Redis keys: per partition a stream, a dead-letter stream and the records of its
//! events, all in the partition's one hash slot, so every script of the queue runs on one
//! cluster node.
//!
//! Partition 0 is the layout of an unpartitioned queue (`<prefix>stream`, `<prefix>dead`,
//! `<prefix>entry:<key>`), so a queue upgraded to several partitions still reads the stream it
//! had. Partition `i > 0` puts `:i` inside the prefix's hash tag (`{vobiz:queue}:` →
//! `{vobiz:queue:1}:`), so the partitions hash to different slots and a cluster spreads them
//! over its masters. A prefix without a hash tag gets one on a cluster (and for partitions
//! `i > 0`), made of the prefix itself.

use crate::dedup::EventKey;

/// The most partitions a queue has: more would only cost reads.
pub(super) const MAX_PARTITIONS: usize = 1024;

/// Every key of a queue: its consumer group and its partitions.
#[derive(Debug)]
pub(super) struct Keys {
    pub(super) prefix: String,
    pub(super) group: String,
    cluster: bool,
    pub(super) partitions: Vec<PartitionKeys>,
}

/// The keys of one partition; every multi-key script gets keys of one partition only.
#[derive(Debug)]
pub(super) struct PartitionKeys {
    pub(super) index: usize,
    pub(super) stream: String,
    pub(super) dead: String,
    /// `<partition prefix>entry:`, followed by an event's 32 hex digits: its record.
    record: String,
}

impl Keys {
    pub(super) fn new(prefix: &str, group: &str, partitions: usize, cluster: bool) -> Self {
        let count = partitions.clamp(1, MAX_PARTITIONS);
        let partitions = (0..count)
            .map(|index| {
                let prefix = partition_prefix(prefix, index, count, cluster);
                PartitionKeys {
                    index,
                    stream: format!("{prefix}stream"),
                    dead: format!("{prefix}dead"),
                    record: format!("{prefix}entry:"),
                }
            })
            .collect();
        Self {
            prefix: prefix.to_owned(),
            group: group.to_owned(),
            cluster,
            partitions,
        }
    }

    /// The same keys with another prefix, group or partition count.
    pub(super) fn with(
        &self,
        prefix: Option<&str>,
        group: Option<&str>,
        partitions: Option<usize>,
    ) -> Self {
        Self::new(
            prefix.unwrap_or(&self.prefix),
            group.unwrap_or(&self.group),
            partitions.unwrap_or(self.partitions.len()),
            self.cluster,
        )
    }

    /// The partition an event goes to: its key's first 8 bytes modulo the partition count
    /// (the key is a digest, so events spread evenly; the same event always lands in the same
    /// partition, so a second enqueue finds the first entry).
    pub(super) fn partition_of(&self, key: &EventKey) -> &PartitionKeys {
        let mut head = [0u8; 8];
        head.copy_from_slice(&key.as_bytes()[..8]);
        let count = self.partitions.len() as u64;
        let index = usize::try_from(u64::from_be_bytes(head) % count).unwrap_or(0);
        &self.partitions[index]
    }

    /// Partition `index` (partition 0 when out of range).
    pub(super) fn partition(&self, index: usize) -> &PartitionKeys {
        self.partitions.get(index).unwrap_or(&self.partitions[0])
    }
}

impl PartitionKeys {
    /// The record of the event `key` in this partition: which entry carries it, its claim
    /// token, its attempts.
    pub(super) fn record(&self, key: Option<&EventKey>) -> String {
        match key {
            Some(key) => format!("{}{key}", self.record),
            // An entry without a key (not written by this crate): a record no entry has.
            None => format!("{}-", self.record),
        }
    }
}

/// The prefix of partition `index` of `count` (see the module docs).
fn partition_prefix(prefix: &str, index: usize, count: usize, cluster: bool) -> String {
    let tagged = hash_tag(prefix);
    let base = match tagged {
        Some((open, close)) => prefix[open + 1..close].to_owned(),
        None => {
            let base: String = prefix.chars().filter(|c| *c != '{' && *c != '}').collect();
            if base.is_empty() {
                "vobiz:queue".to_owned()
            } else {
                base
            }
        }
    };
    if index == 0 {
        return match tagged {
            Some(_) => prefix.to_owned(),
            None if !cluster => prefix.to_owned(),
            None => format!("{{{base}}}{prefix}"),
        };
    }
    let zero = partition_prefix(prefix, 0, count, cluster);
    let tag = spread_tag(&base, index, count, slot_number(&format!("{zero}stream")));
    match tagged {
        Some((open, close)) => format!("{}{tag}{}", &prefix[..=open], &prefix[close..]),
        None => format!("{{{tag}}}{prefix}"),
    }
}

/// Cluster hash slots.
const SLOTS: usize = 16_384;

/// The tag of partition `index > 0`: `<base>:<index>`, or `<base>:<index>.<k>` with the
/// smallest `k` that puts its slot in the middle half of the `index`-th of `count` equal slot
/// ranges after partition 0's. A cluster whose masters own equal ranges (as `redis-cli
/// --cluster create` makes them) then serves `count` partitions from `count` different
/// masters; the names depend only on the prefix, `index` and `count`, so every process agrees.
fn spread_tag(base: &str, index: usize, count: usize, zero_slot: usize) -> String {
    use redis::cluster_routing::Slot;
    let range = (zero_slot * count / SLOTS + index) % count;
    let (start, end) = (range * SLOTS / count, (range + 1) * SLOTS / count);
    let quarter = (end - start) / 4;
    let wanted: std::collections::HashSet<Slot> = (start + quarter..end - quarter)
        .filter_map(|slot| Slot::new(u16::try_from(slot).ok()?))
        .collect();
    (0..100_000)
        .map(|k| match k {
            0 => format!("{base}:{index}"),
            k => format!("{base}:{index}.{k}"),
        })
        .find(|tag| wanted.contains(&Slot::for_key(tag)))
        .unwrap_or_else(|| format!("{base}:{index}"))
}

/// The slot number of `key` (redis' own slot function, which exposes no number).
fn slot_number(key: &str) -> usize {
    use redis::cluster_routing::Slot;
    let slot = Slot::for_key(key);
    (0..SLOTS)
        .find(|&number| u16::try_from(number).ok().and_then(Slot::new) == Some(slot))
        .unwrap_or(0)
}

/// Redis' hash tag rule: the first `{` and the first `}` after it, with something between;
/// their positions.
fn hash_tag(key: &str) -> Option<(usize, usize)> {
    let open = key.find('{')?;
    let close = open + 1 + key[open + 1..].find('}')?;
    (close > open + 1).then_some((open, close))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::redis::same_slot;

    const PREFIXES: [&str; 8] = [
        "{vobiz:queue}:",
        "{vobiz}:queue:",
        "vobiz:queue:",
        "pre{tag}post:",
        "a{}b{c}:",
        "{}",
        "",
        "{{x}}:",
    ];

    fn events() -> impl Iterator<Item = EventKey> {
        (0..200).map(|n| EventKey::from_event_id(&format!("evt-{n}")))
    }

    /// Every multi-key script (enqueue, pickup, touch, ack: stream + record; dead letter:
    /// stream + dead + record) gets the keys of one partition: they must share a slot on a
    /// cluster, for every prefix and partition count, or the cluster answers CROSSSLOT.
    #[test]
    fn every_script_s_keys_share_one_slot_on_a_cluster() {
        for prefix in PREFIXES {
            for partitions in [1, 2, 3, 8] {
                let keys = Keys::new(prefix, "g", partitions, true);
                for event in events() {
                    let part = keys.partition_of(&event);
                    let script_keys = [
                        part.stream.clone(),
                        part.dead.clone(),
                        part.record(Some(&event)),
                        part.record(None),
                    ];
                    assert!(
                        same_slot(&script_keys),
                        "prefix {prefix:?}, {partitions} partitions: {script_keys:?}"
                    );
                }
            }
        }
    }

    /// A tagged prefix keeps its slot on a single node as well, and the partitions of any
    /// prefix are each in one slot.
    #[test]
    fn tagged_prefixes_and_partitions_share_a_slot_on_one_node_too() {
        for prefix in PREFIXES {
            for partitions in [1, 3] {
                let keys = Keys::new(prefix, "g", partitions, false);
                for part in &keys.partitions {
                    if part.index == 0 && hash_tag(prefix).is_none() {
                        continue; // today's layout, untouched: one node needs no slot
                    }
                    let event = EventKey::from_event_id("x");
                    assert!(same_slot(&[
                        &part.stream,
                        &part.dead,
                        &part.record(Some(&event))
                    ]));
                }
            }
        }
    }

    #[test]
    fn partition_zero_is_the_unpartitioned_layout() {
        let one = Keys::new("{vobiz:queue}:", "g", 1, false);
        let three = Keys::new("{vobiz:queue}:", "g", 3, true);
        assert_eq!(one.partitions[0].stream, "{vobiz:queue}:stream");
        assert_eq!(three.partitions[0].stream, one.partitions[0].stream);
        assert_eq!(three.partitions[0].dead, "{vobiz:queue}:dead");
        assert!(three.partitions[1].stream.starts_with("{vobiz:queue:1"));
        assert!(three.partitions[1].stream.ends_with("}:stream"));
        assert!(three.partitions[2].dead.starts_with("{vobiz:queue:2"));
        // An untagged prefix is untouched on one node.
        assert_eq!(
            Keys::new("q:", "g", 1, false).partitions[0].stream,
            "q:stream"
        );
        assert_eq!(
            Keys::new("q:", "g", 1, true).partitions[0].stream,
            "{q:}q:stream"
        );
    }

    #[test]
    fn partitions_spread_over_slots_and_events_over_partitions() {
        use redis::cluster_routing::Slot;
        let keys = Keys::new("{vobiz:queue}:", "g", 3, true);
        let slots: std::collections::HashSet<_> = keys
            .partitions
            .iter()
            .map(|part| Slot::for_key(&part.stream))
            .collect();
        assert_eq!(slots.len(), 3);
        // On redis-cli's equal ranges for three masters, three partitions on three masters,
        // whatever the prefix; eight on three masters are spread too.
        let owner = |key: &str| match slot_number(key) {
            0..=5460 => 0,
            5461..=10922 => 1,
            _ => 2,
        };
        for n in 0..50 {
            let prefix = format!("{{app-{n}}}:queue:");
            let keys = Keys::new(&prefix, "g", 3, true);
            let masters: std::collections::HashSet<_> = keys
                .partitions
                .iter()
                .map(|part| owner(&part.stream))
                .collect();
            assert_eq!(masters.len(), 3, "{prefix}: {keys:?}");
            let keys = Keys::new(&prefix, "g", 8, true);
            let mut per_master = [0; 3];
            for part in &keys.partitions {
                per_master[owner(&part.stream)] += 1;
            }
            assert!(per_master.iter().all(|&count| count >= 2), "{per_master:?}");
        }
        let mut counts = [0usize; 3];
        for event in events() {
            counts[keys.partition_of(&event).index] += 1;
        }
        assert!(counts.iter().all(|&count| count > 40), "{counts:?}");
        assert_eq!(Keys::new("p", "g", 0, false).partitions.len(), 1);
        assert_eq!(
            Keys::new("p", "g", usize::MAX, false).partitions.len(),
            MAX_PARTITIONS
        );
    }
}
