//! MQTT codec (in progress).
