//! manifest-builder.
