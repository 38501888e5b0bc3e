//! The registrar's data (D-3): the school register (names as in school,
//! faculty, degree, dates, leaving type) and academic records (courses,
//! credits, grades), each imported from CSV and kept by version. What
//! certificates and transcripts state comes from here.

pub mod academic;
pub mod school_register;
