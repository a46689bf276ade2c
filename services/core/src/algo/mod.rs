//! Pure algorithms, free of I/O, tested by unit and property tests.

pub mod dedup;
pub mod rectifier;
pub mod vclock;
pub mod view;

pub use dedup::DedupWindow;
pub use rectifier::Rectifier;
pub use view::SeqView;
