//! PC/SC readers through the `pcsc` crate, and a virtual card attached to vsmartcard's vpcd.
