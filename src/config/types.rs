//! Typed values of the config file (durations, byte sizes, rates), defined in the leaf
//! [`crate::units`] so that the rules can parse them without depending on the configuration.

pub use crate::units::{Rate, parse_duration, parse_rate, parse_size};
