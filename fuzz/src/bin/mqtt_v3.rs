//! AFL++ entry point of [`junction_fuzz::mqtt_v3`]: `cargo afl build -p junction-fuzz --features afl`,
//! then `cargo afl fuzz -i fuzz/corpus/mqtt_v3 -o <out> target/debug/mqtt_v3` (see docs/RELIABILITY.md).

fn main() {
    afl::fuzz!(|data: &[u8]| junction_fuzz::mqtt_v3(data));
}
