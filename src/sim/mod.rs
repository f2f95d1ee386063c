//! The simulated world: the shared clock and the simulated DigitalOcean.

pub mod clock;
pub mod digitalocean;
