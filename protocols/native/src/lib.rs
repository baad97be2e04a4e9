//! Native protocol codec (in progress).
