//! Junction SDK (in progress).
