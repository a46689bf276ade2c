//! Read diffusion on one gateway (huge groups, see `docs/huge-groups.md`):
//! pages of conversations served from the hot-tail cache (`tail`) with
//! concurrent identical store reads coalesced (`flight`, `pages`), and the
//! index of which connection follows which conversation, registered in
//! Presence (`follows`). What comes back on the gateway's topic (notices,
//! read marks) is handled in `pushes`.

mod flight;
mod follows;
mod pages;
pub(crate) mod tail;

pub(crate) use follows::Follows;
pub(crate) use pages::{PageError, Reads};
