//! Shared helpers for the examples (the examples themselves are filed separately).
