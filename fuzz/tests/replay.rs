//! The fuzz targets as randomized tests: every committed corpus file, mutations of each, and
//! random inputs. The seed is printed; `JUNCTION_FUZZ_SEED=<n>` repeats a run,
//! `JUNCTION_FUZZ_ITERS=<n>` scales it (default 2,000 mutations and random inputs per target),
//! and `JUNCTION_FUZZ_TARGET=<name> JUNCTION_FUZZ_INPUT=<file>` runs one input (a crash AFL++
//! found, say).

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p, b)
        })
        .collect()
}

fn mutate(rng: &mut StdRng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..rng.random_range(1..8) {
        let len = v.len();
        match rng.random_range(0..7) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                v[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                v[i] = [0u8, 0xff, 0x7f, 0x80, b'\n', b':', 0][rng.random_range(0..7)];
            }
            2 => {
                let i = rng.random_range(0..=len);
                let b = rng.random();
                v.insert(i, b);
            }
            3 if len > 0 => {
                let i = rng.random_range(0..len);
                v.truncate(i);
            }
            4 if len > 1 => {
                let a = rng.random_range(0..len);
                let b = rng.random_range(a..len);
                v.drain(a..b);
            }
            5 if !other.is_empty() => {
                // Splice the tail of another seed in.
                let i = rng.random_range(0..=len);
                let j = rng.random_range(0..other.len());
                v.truncate(i);
                v.extend_from_slice(&other[j..]);
            }
            _ if len >= 4 => {
                // A length or count field set to something extreme.
                let i = rng.random_range(0..len - 3);
                let x: u32 = *[0, 1, u32::MAX, 0x7fff_ffff, 0xffff, 0x1_0000]
                    .get(rng.random_range(0..6))
                    .unwrap_or(&0);
                v[i..i + 4].copy_from_slice(&x.to_be_bytes());
            }
            _ => {}
        }
    }
    v
}

fn iterations() -> usize {
    std::env::var("JUNCTION_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn run(name: &str, iters: usize) {
    let (_, target) = junction_fuzz::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("a target of that name");
    if let (Ok(t), Ok(input)) = (
        std::env::var("JUNCTION_FUZZ_TARGET"),
        std::env::var("JUNCTION_FUZZ_INPUT"),
    ) {
        if t == name {
            target(&std::fs::read(input).unwrap());
        }
        return;
    }
    let seed = std::env::var("JUNCTION_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("{name}: JUNCTION_FUZZ_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let seeds = corpus(name);
    assert!(!seeds.is_empty(), "{name}: the corpus is empty");
    for (path, bytes) in &seeds {
        println!("{name}: {}", path.display());
        target(bytes);
    }
    for i in 0..iters {
        let (_, a) = &seeds[i % seeds.len()];
        let (_, b) = &seeds[rng.random_range(0..seeds.len())];
        target(&mutate(&mut rng, a, b));
        let mut random = vec![0u8; rng.random_range(0..512)];
        rng.fill_bytes(&mut random);
        target(&random);
    }
}

#[test]
fn amqp_frames() {
    run("amqp_frames", iterations());
}

#[test]
fn amqp_method() {
    run("amqp_method", iterations());
}

#[test]
fn mqtt_v3() {
    run("mqtt_v3", iterations());
}

#[test]
fn mqtt_v5() {
    run("mqtt_v5", iterations());
}

#[test]
fn stomp_frames() {
    run("stomp_frames", iterations());
}

#[test]
fn native_frames() {
    run("native_frames", iterations());
}

#[test]
fn store_recovery() {
    // Each input copies and reopens a store: fewer of them.
    run("store_recovery", iterations() / 10 + 1);
}

#[test]
fn every_target_has_a_test_and_a_corpus() {
    let src = include_str!("replay.rs");
    for (name, _) in junction_fuzz::TARGETS {
        assert!(src.contains(&format!("fn {name}()")), "no test for {name}");
        assert!(!corpus(name).is_empty(), "no corpus for {name}");
    }
}
