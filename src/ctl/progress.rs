//! Progress on standard error for the operations that can take long (import, export, purge).
//! Drawn only when standard error is a terminal: scripts and pipes see nothing.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` steps.
pub fn bar(len: u64, what: &'static str) -> ProgressBar {
    let b = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})") {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_message(what);
    b
}

/// A spinner for one long call.
pub fn spinner(what: String) -> ProgressBar {
    let s = ProgressBar::new_spinner();
    s.set_message(what);
    s.enable_steady_tick(Duration::from_millis(100));
    s
}
