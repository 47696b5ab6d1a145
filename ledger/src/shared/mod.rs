//! What both write paths share and neither owns: the command queue and its limits
//! ([`queue`]), the state the handle and the writer threads share ([`status`]), derived
//! records ([`records`]), and what the handle knows of a started path ([`open`]).

pub(crate) mod open;
pub(crate) mod prefetch;
pub(crate) mod queue;
pub(crate) mod records;
pub(crate) mod status;
