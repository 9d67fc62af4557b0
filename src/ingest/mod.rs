//! Leads coming in: Meta's signed webhook is verified ([`signature`]) and parsed
//! ([`payload`]), kept with one job per lead id ([`inbox`]), and each job becomes a lead when
//! the [`worker`] has fetched it from Graph.

pub mod inbox;
pub mod payload;
pub mod signature;
pub mod worker;

pub use inbox::{Inbox, Refusal};
pub use worker::Worker;
