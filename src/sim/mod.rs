//! The simulated world: the simulated DigitalOcean (the clock is the `clock` crate).

pub mod digitalocean;
