//! Every fuzz check runs over its committed seeds (`fuzz/seeds/<target>/`) and a few thousand
//! deterministic mutations of them, so `cargo test` catches what a short fuzz run would.
//!
//! The seeds are written by `write_seeds` below:
//! `cargo test -p tidings-client --test security -- --ignored write_seeds`.

use std::{
    collections::BTreeSet,
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
};

use tidings_protocol::fuzzing::Check;

/// Mutated inputs run per target.
const MUTATIONS: usize = 10_000;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn checks() -> Vec<(&'static str, Check)> {
    [
        tidings_protocol::fuzzing::TARGETS,
        tidings_relay::fuzzing::TARGETS,
        tidings_client::fuzzing::TARGETS,
    ]
    .concat()
}

fn check(name: &str) -> Check {
    checks()
        .into_iter()
        .find(|(target, _)| *target == name)
        .map(|(_, check)| check)
        .unwrap_or_else(|| panic!("no check named {name}"))
}

fn seeds(name: &str) -> Vec<Vec<u8>> {
    let dir = fuzz_dir().join("seeds").join(name);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect()
}

/// splitmix64: a fixed-seed generator, so every run tries the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes that often sit at the edges of CBOR headers and lengths.
const INTERESTING: &[u8] = &[
    0, 1, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1f, 0x40, 0x7f, 0x80, 0xff,
];

/// One to four byte-level edits of `input`, sometimes splicing in part of `other`.
fn mutate(input: &[u8], other: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(7) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 if at < out.len() => out[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 => out.truncate(at),
            3 => {
                let bytes: Vec<u8> = (0..=rng.below(8)).map(|_| rng.next() as u8).collect();
                out.splice(at..at, bytes);
            }
            4 => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            5 if at < out.len() => {
                let end = (at + 1 + rng.below(32)).min(out.len());
                let chunk = out[at..end].to_vec();
                let to = rng.below(out.len() + 1);
                out.splice(to..to, chunk);
            }
            _ => {
                let from = rng.below(other.len() + 1);
                let end = (from + rng.below(64)).min(other.len());
                out.splice(at.., other[from..end].iter().copied());
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Runs the check of `name` on its seeds and their mutations; fails naming the first input
/// that broke it.
fn run(name: &str) {
    let check = check(name);
    let seeds = seeds(name);
    assert!(!seeds.is_empty(), "fuzz/seeds/{name} is empty");
    let run_one = |input: &[u8]| {
        if catch_unwind(AssertUnwindSafe(|| check(input))).is_err() {
            panic!(
                "fuzz check {name} failed on {} bytes: {}\n(save them as a file and run \
                 `cargo fuzz run {name} FILE` to debug)",
                input.len(),
                hex(input)
            );
        }
    };
    for seed in &seeds {
        run_one(seed);
    }
    let mut rng = Rng(name.bytes().fold(0x0074_6964_696e_6773, |hash, byte| {
        hash.rotate_left(5) ^ u64::from(byte)
    }));
    for _ in 0..MUTATIONS {
        let seed = &seeds[rng.below(seeds.len())];
        let other = &seeds[rng.below(seeds.len())];
        run_one(&mutate(seed, other, &mut rng));
    }
}

#[test]
fn every_fuzz_target_has_a_check_and_seeds() {
    let targets: BTreeSet<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            path.file_stem().unwrap().to_string_lossy().into_owned()
        })
        .collect();
    let checks: BTreeSet<String> = checks()
        .into_iter()
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(
        targets, checks,
        "fuzz/fuzz_targets and the `fuzzing` modules disagree"
    );
    let tested: BTreeSet<String> = TESTED.iter().map(|name| name.to_string()).collect();
    assert_eq!(tested, checks, "a check has no corpus test below");
}

macro_rules! corpus_tests {
    ($($name:ident),* $(,)?) => {
        const TESTED: &[&str] = &[$(stringify!($name)),*];
        $(
            #[test]
            fn $name() {
                run(stringify!($name));
            }
        )*
    };
}

corpus_tests!(
    envelope,
    client_request,
    client_response,
    federation_request,
    home_record,
    group_descriptor,
    device_list,
    content,
    presence,
    contact_card,
    frame_reader,
    relay_config,
    relay_store_records,
    client_store_records,
    key_file,
    link,
);

/// Writes the seed corpus: valid values of every decoded type, and a few broken ones.
#[test]
#[ignore = "writes fuzz/seeds; run by hand after changing a wire type"]
fn write_seeds() {
    crate::fuzz_seeds::write_all(&fuzz_dir().join("seeds"));
}
