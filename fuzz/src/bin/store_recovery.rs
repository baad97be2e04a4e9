//! AFL++ entry point of [`junction_fuzz::store_recovery`]: `cargo afl build -p junction-fuzz --features afl`,
//! then `cargo afl fuzz -i fuzz/corpus/store_recovery -o <out> target/debug/store_recovery` (see docs/RELIABILITY.md).

fn main() {
    afl::fuzz!(|data: &[u8]| junction_fuzz::store_recovery(data));
}
