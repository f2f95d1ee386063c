//! Capability gaps of the DTMA agent, reported as conditions.
