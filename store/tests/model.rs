//! Property test: random appends, reads, look-ups and restarts against a simple in-memory model,
//! with tiny segments so records cross segment boundaries all the time.

use junction_store::{AppendRequest, QueueKey, Store, StoreConfig};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Append to the queues whose bits are set in `mask` (bit i = queue i).
    Append {
        mask: u8,
        len: usize,
        key: Option<u8>,
    },
    Read {
        queue: u32,
        from: u64,
        max: usize,
    },
    Lookup {
        key: u8,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..8, 0usize..1500, proptest::option::of(0u8..6))
            .prop_map(|(mask, len, key)| Op::Append { mask, len, key }),
        3 => (0u32..3, 0u64..120, 1usize..40).prop_map(|(queue, from, max)| Op::Read { queue, from, max }),
        1 => (0u8..6).prop_map(|key| Op::Lookup { key }),
        1 => Just(Op::Restart),
    ]
}

struct Model {
    /// (body, key) per record, in append order.
    records: Vec<(Vec<u8>, Option<u8>)>,
    /// Per queue: indexes into `records`.
    queues: [Vec<usize>; 3],
}

fn body(n: usize, len: usize) -> Vec<u8> {
    (0..len).map(|j| (n * 131 + j * 7) as u8).collect()
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig::tiny(dir.path());
    let mut store = Store::open(cfg.clone()).unwrap();
    let mut m = Model {
        records: Vec::new(),
        queues: [Vec::new(), Vec::new(), Vec::new()],
    };
    for op in ops {
        match op {
            Op::Append { mask, len, key } => {
                let targets: Vec<QueueKey> = (0..3)
                    .filter(|q| mask & (1 << q) != 0)
                    .map(|q| QueueKey::new(q, 0))
                    .collect();
                let n = m.records.len();
                let b = body(n, len);
                let kb = key.map(|k| vec![b'k', k]);
                let keys: Vec<&[u8]> = kb.iter().map(|k| k.as_slice()).collect();
                let a = store
                    .append(&AppendRequest {
                        targets: &targets,
                        keys: &keys,
                        body: &b,
                        ..Default::default()
                    })
                    .unwrap();
                for (t, qo) in targets.iter().zip(&a.queue_offsets) {
                    let q = &mut m.queues[t.queue as usize];
                    prop_assert_eq!(*qo, q.len() as u64);
                    q.push(n);
                }
                m.records.push((b, key));
            }
            Op::Read { queue, from, max } => {
                let batch = store.read(QueueKey::new(queue, 0), from, max).unwrap();
                let want: Vec<usize> = m.queues[queue as usize]
                    .iter()
                    .skip(from as usize)
                    .take(max)
                    .copied()
                    .collect();
                prop_assert_eq!(batch.messages.len(), want.len());
                for (i, (msg, idx)) in batch.messages.iter().zip(&want).enumerate() {
                    prop_assert_eq!(msg.queue_offset, from + i as u64);
                    prop_assert_eq!(&msg.record.body[..], &m.records[*idx].0[..]);
                }
            }
            Op::Lookup { key } => {
                let hits = store.lookup_key(&[b'k', key], i64::MIN, i64::MAX, 1000);
                let want = m.records.iter().filter(|r| r.1 == Some(key)).count();
                prop_assert_eq!(hits.len(), want);
                for h in &hits {
                    prop_assert!(h.keys().any(|k| k[..] == [b'k', key]));
                }
            }
            Op::Restart => {
                drop(store);
                store = Store::open(cfg.clone()).unwrap();
            }
        }
    }
    // Everything, once more, after a final restart.
    drop(store);
    let store = Store::open(cfg).unwrap();
    for (q, idxs) in m.queues.iter().enumerate() {
        let batch = store
            .read(QueueKey::new(q as u32, 0), 0, usize::MAX)
            .unwrap();
        prop_assert_eq!(batch.messages.len(), idxs.len());
        for (msg, idx) in batch.messages.iter().zip(idxs) {
            prop_assert_eq!(&msg.record.body[..], &m.records[*idx].0[..]);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
