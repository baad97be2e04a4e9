//! STOMP codec (in progress).
