//! AFL++ entry point of [`junction_fuzz::mqtt_v5`]: `cargo afl build -p junction-fuzz --features afl`,
//! then `cargo afl fuzz -i fuzz/corpus/mqtt_v5 -o <out> target/debug/mqtt_v5` (see docs/RELIABILITY.md).

fn main() {
    afl::fuzz!(|data: &[u8]| junction_fuzz::mqtt_v5(data));
}
