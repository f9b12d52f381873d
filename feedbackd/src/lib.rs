//! feedbackd
